"""Planning a job: checks before side effects, and every input resolved once per submission."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from himl_tasks.backends.azureml_v1 import AzureMLV1Backend
from himl_tasks.backends.local.backend import LocalBackend
from himl_tasks.datasets import DatasetConfig
from himl_tasks.errors import InvalidInputError
from himl_tasks.job_spec import JobSpec
from himl_tasks.jobs.identity import job_identity
from himl_tasks.jobs.submit_once import submit_once
from himl_tasks.sweeps import Choice, SweepSpec
from tests.backends.azureml_service import FakeAzureMLService
from tests.backends.conftest import write_script
from tests.conftest import write_tree


def count_dataset_lookups(
    service: FakeAzureMLService, monkeypatch: pytest.MonkeyPatch
) -> list[tuple[str, int | None]]:
    """Records each dataset lookup the backend makes of the service: (name, version)."""
    lookups: list[tuple[str, int | None]] = []
    original = service.dataset

    def dataset(name: str, version: int | None) -> Any:
        lookups.append((name, version))
        return original(name, version)

    monkeypatch.setattr(service, "dataset", dataset)
    return lookups


def test_an_azureml_job_s_inputs_are_looked_up_as_latest_once_per_submission(
    aml: AzureMLV1Backend,
    aml_service: FakeAzureMLService,
    project: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    write_script(project, "train.py", "print('training')\n")
    (project / "environment.yml").write_text("name: job\ndependencies:\n  - python=3.11\n")
    aml.datastore().upload_folder(write_tree(tmp_path / "src", {"a.txt": b"x"}), "scans")
    aml.register_dataset("scans", "", "scans")
    lookups = count_dataset_lookups(aml_service, monkeypatch)
    spec = JobSpec(
        entry_script="train.py",
        snapshot_root=project,
        compute="cpu-cluster",
        input_datasets=["scans", DatasetConfig("labels")],  # labels: only a folder yet
    )
    aml.datastore().upload_folder(write_tree(tmp_path / "labels", {"l.txt": b"y"}), "labels")

    plan = aml.plan(spec)
    identity = job_identity(plan, workspace="ws")
    aml.register_dataset("scans", "", "scans")  # a newer version, after the plan was made
    ref, found = submit_once(aml, plan, identity)

    assert not found
    assert lookups.count(("scans", None)) == 1 and lookups.count(("labels", None)) == 1
    # The run configuration gets exactly the planned versions, fetched by number.
    assert sorted(lookup for lookup in lookups if lookup[1] is not None) == [
        ("labels", 1),
        ("scans", 1),
    ]
    assert len(aml_service.datasets["labels"]) == 1  # registered once, when planned
    config = aml_service.submitted[-1][1]
    assert config.run_config.data["INPUT_0"].dataset is aml_service.datasets["scans"][0].dataset
    assert ref.run_id == aml.find_submission(identity).run_id  # type: ignore[union-attr]


def test_an_azureml_script_outside_the_snapshot_is_refused_before_an_input_is_registered(
    aml: AzureMLV1Backend, aml_service: FakeAzureMLService, project: Path, tmp_path: Path
) -> None:
    aml.datastore().upload_folder(write_tree(tmp_path / "src", {"a.txt": b"x"}), "scans")
    spec = JobSpec(
        entry_script="missing.py",
        snapshot_root=project,
        compute="cpu-cluster",
        input_datasets=["scans"],
    )

    with pytest.raises(InvalidInputError, match="missing.py does not exist"):
        aml.plan(spec)
    assert "scans" not in aml_service.datasets


def test_a_local_job_with_no_interpreter_is_refused_before_an_input_is_registered(
    backend: LocalBackend, project: Path, tmp_path: Path
) -> None:
    write_script(project, "train.py", "print('training')\n")
    backend.datastore().upload_folder(write_tree(tmp_path / "src", {"a.txt": b"x"}), "scans")
    spec = JobSpec(
        entry_script="train.py",
        snapshot_root=project,
        python_executable="/no/such/python",
        input_datasets=["scans"],
    )

    with pytest.raises(InvalidInputError, match="python_executable"):
        backend.plan(spec)
    assert backend.registry.dataset_names() == []


def test_a_local_plan_is_submitted_with_the_versions_it_resolved(
    backend: LocalBackend, project: Path, tmp_path: Path
) -> None:
    write_script(project, "train.py", "print('training')\n")
    source = write_tree(tmp_path / "src", {"a.txt": b"x"})
    backend.datastore().upload_folder(source, "scans")
    plan = backend.plan(JobSpec(entry_script="train.py", snapshot_root=project,
                                input_datasets=["scans"]))  # fmt: skip
    backend.register_dataset("scans", "", "scans")  # version 2, after the plan

    ref = backend.submit(plan)

    row = backend.registry.get_run(ref.run_id)
    assert row is not None and [i.version for i in row.launch_plan.inputs] == [1]
    assert backend.wait(ref, timeout=60).succeeded


def test_a_plan_is_refused_by_a_workspace_other_than_the_one_that_made_it(
    tmp_path: Path, project: Path
) -> None:
    planner, other = LocalBackend(tmp_path / "a"), LocalBackend(tmp_path / "b")
    for backend, text in ((planner, b"planned data"), (other, b"other data")):
        source = write_tree(tmp_path / f"src-{backend.root.name}", {"x.txt": text})
        backend.datastore().upload_folder(source, "scans")
    write_script(project, "train.py", "print('ok')\n")
    plan = planner.plan(
        JobSpec(entry_script="train.py", snapshot_root=project, input_datasets=["scans"])
    )

    for submit in (
        lambda: other.submit(plan),
        lambda: other.submit(plan, submission_id="sid"),
        lambda: other.submit_sweep(
            plan, SweepSpec({"--lr": Choice([0.1])}, "loss", sampling="grid")
        ),
    ):
        with pytest.raises(InvalidInputError, match="prepared by local:.*Plan the job here"):
            submit()
    assert other.registry.runs() == []
    # Another object on the planner's own workspace takes it.
    same = LocalBackend(tmp_path / "a")
    assert same.wait(same.submit(plan), timeout=60).succeeded


def test_an_azureml_plan_is_refused_by_the_local_backend(
    aml: AzureMLV1Backend, backend: LocalBackend, project: Path
) -> None:
    write_script(project, "train.py", "print('ok')\n")
    plan = aml.plan(JobSpec(entry_script="train.py", snapshot_root=project, compute="cpu-cluster"))

    with pytest.raises(InvalidInputError, match="prepared by azureml_v1:"):
        backend.submit(plan)


def test_a_plan_whose_inputs_do_not_match_its_spec_cannot_be_made(
    backend: LocalBackend, project: Path, tmp_path: Path
) -> None:
    import dataclasses

    backend.datastore().upload_folder(write_tree(tmp_path / "src", {"a.txt": b"x"}), "scans")
    write_script(project, "train.py", "print('ok')\n")
    plan = backend.plan(
        JobSpec(entry_script="train.py", snapshot_root=project, input_datasets=["scans"])
    )

    for spec in (
        dataclasses.replace(plan.spec, input_datasets=[]),
        dataclasses.replace(plan.spec, input_datasets=["labels"]),
    ):
        with pytest.raises(InvalidInputError, match="inputs .* do not match"):
            dataclasses.replace(plan, spec=spec)
