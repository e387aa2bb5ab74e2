"""The identities jobs and sweeps are submitted under (no Prefect: `himl_tasks.jobs.identity`)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from himl_tasks.backends.local.backend import LocalBackend
from himl_tasks.job_spec import JobSpec
from himl_tasks.jobs.identity import job_submission_identity, sweep_submission_identity
from himl_tasks.sweeps import Choice, SweepSpec
from tests.backends.conftest import write_script


@pytest.fixture
def spec(tmp_path: Path) -> JobSpec:
    write_script(tmp_path / "project", "train.py", "print('training')\n")
    return JobSpec(entry_script="train.py", snapshot_root=tmp_path / "project")


def sweep(**changes: object) -> SweepSpec:
    fields: dict[str, object] = {
        "parameters": {"lr": Choice(0.1, 0.01)},
        "primary_metric": "loss",
        "max_total_runs": 4,
    }
    return SweepSpec(**{**fields, **changes})  # type: ignore[arg-type]


def test_a_jobs_identity_names_the_job_and_its_workspace(spec: JobSpec, tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path / "workspace")
    identity = job_submission_identity(backend.plan(spec), workspace="local-workspace/demo")
    assert re.fullmatch(r"himl-job-[0-9a-f]{48}", identity)
    assert identity == job_submission_identity(backend.plan(spec), workspace="local-workspace/demo")
    assert identity != job_submission_identity(
        backend.plan(spec), workspace="local-workspace/other"
    )
    (spec.snapshot_root / "train.py").write_text("print('training harder')\n")
    assert identity != job_submission_identity(backend.plan(spec), workspace="local-workspace/demo")


def test_a_sweeps_identity_covers_its_job_and_every_sweep_setting(
    spec: JobSpec, tmp_path: Path
) -> None:
    backend = LocalBackend(tmp_path / "workspace")
    identity = sweep_submission_identity(backend.plan(spec), sweep(), workspace="w")
    assert re.fullmatch(r"himl-sweep-[0-9a-f]{48}", identity)
    assert identity == sweep_submission_identity(backend.plan(spec), sweep(), workspace="w")
    others = {
        sweep_submission_identity(backend.plan(spec), changed, workspace="w")
        for changed in (
            sweep(parameters={"lr": Choice(0.1, 0.001)}),
            sweep(primary_metric="accuracy"),
            sweep(goal="maximize"),
            sweep(max_total_runs=1),
            sweep(max_concurrent_runs=1),
        )
    }
    assert len(others) == 5 and identity not in others
    assert identity != sweep_submission_identity(backend.plan(spec), sweep(), workspace="v")


def test_a_jobs_identity_does_not_depend_on_where_its_checkout_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from himl_tasks.datasets import DatasetConfig

    backend = LocalBackend(tmp_path / "workspace")
    backend.datastore().upload_folder(write_script(tmp_path / "raw", "a.csv", "1").parent, "scans")
    identities = set()
    for checkout in ("first", "second"):
        project = tmp_path / checkout
        write_script(project, "train.py", "print('training')\n")
        monkeypatch.chdir(project)
        # local_folder serves the script outside a job: it does not change the job.
        scans = DatasetConfig("scans", local_folder="data/scans")
        plan = backend.plan(JobSpec(entry_script="train.py", input_datasets=[scans]))
        identities.add(job_submission_identity(plan, workspace="w"))
    assert len(identities) == 1
