# ruff: noqa: F811 (the fixtures of tests/backends are imported, and named as arguments)
"""A job's identity is read from its plan: spec, snapshot content, input versions; nothing else."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

from himl_tasks.backends.local.backend import LocalBackend
from himl_tasks.datasets import ResolvedDataset
from himl_tasks.job_spec import JobSpec
from himl_tasks.jobs.identity import job_identity
from tests.backends.conftest import backend, project, write_script  # noqa: F401 (fixtures)
from tests.conftest import write_tree


def test_the_same_job_in_another_folder_has_the_same_identity(
    backend: LocalBackend, project: Path, tmp_path: Path
) -> None:
    write_script(project, "jobs/train.py", "print('training')\n")
    (project / "environment.yml").write_text("name: job\n")
    moved = tmp_path / "moved"
    shutil.copytree(project, moved)

    def identity(root: Path) -> str:
        spec = JobSpec(
            entry_script="jobs/train.py",
            snapshot_root=root,
            conda_environment_file=root / "environment.yml",
            display_name=f"from {root.name}",  # a name for people, not part of the job
        )
        return job_identity(backend.plan(spec), workspace="ws")

    assert identity(project) == identity(moved)
    (moved / "jobs" / "train.py").write_text("print('training harder')\n")
    assert identity(project) != identity(moved)


def test_an_identity_is_read_from_the_plan_without_asking_the_backend(
    backend: LocalBackend, project: Path, tmp_path: Path
) -> None:
    write_script(project, "train.py", "print('training')\n")
    backend.datastore().upload_folder(write_tree(tmp_path / "src", {"a.txt": b"x"}), "scans")
    plan = backend.plan(JobSpec(entry_script="train.py", snapshot_root=project,
                                input_datasets=["scans"]))  # fmt: skip
    before = job_identity(plan, workspace="ws")
    shutil.rmtree(backend.root)  # no workspace left to ask

    assert job_identity(plan, workspace="ws") == before
    newer = dataclasses.replace(plan, inputs=(ResolvedDataset("scans", 2, "", "scans/run_2"),))
    assert job_identity(newer, workspace="ws") != before
    assert job_identity(plan, workspace="other") != before
