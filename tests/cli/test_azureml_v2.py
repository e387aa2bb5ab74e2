"""`himl` against the AzureML SDK v2 backend, through the v2 service stand-in at its seam
(tests/backends/azureml_v2_service.py: jobs step through v2's statuses, write their log and
files into the artifact store on Azurite and their metrics into a real MLflow store, sweeps
start their trials as child jobs, outputs become data asset versions)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from himl_tasks.backends.azureml_v2 import AzureMLV2Backend
from himl_tasks.backends.azureml_v2.submitted_specs import SPEC_FILE
from himl_tasks.errors import StorageAccessError
from himl_tasks.job_spec import JobSpec
from himl_tasks.runs import RunStatus
from himl_tasks.storage.folder_view import FolderView
from himl_tasks.sweeps import Choice, SweepSpec
from tests.backends.azureml_v2_service import (
    ARTIFACT_DATASTORE,
    KEEPS_RUNNING,
    TO_FAILED,
    FakeAzureMLV2Service,
    Outcome,
)
from tests.cli.conftest import himl

# MLflow 3.17's SQL store (the stand-in's tracking server) uses loader options SQLAlchemy 2.1
# deprecates; the warnings are the library's.
pytestmark = pytest.mark.filterwarnings(
    "ignore:The ``noload`` loader strategy is deprecated:DeprecationWarning"
)


@pytest.fixture
def v2(aml_v2: AzureMLV2Backend) -> AzureMLV2Backend:
    aml_v2.max_poll_seconds = 0.05  # type: ignore[misc]  # the stand-in answers at once
    return aml_v2


def test_status_logs_results_metrics(
    v2: AzureMLV2Backend, aml_v2_service: FakeAzureMLV2Service, spec: JobSpec, tmp_path: Path
) -> None:
    aml_v2_service.next_outcome = Outcome(
        log_lines=("epoch 0", "epoch 1"),
        files={"outputs/model.txt": b"weights", "logs/x.txt": b"x"},
        metrics={"loss": [1.0, 0.5, 0.25]},
    )
    good = v2.submit(dataclasses.replace(spec, display_name="good", tags={"lr": "0.1"}))
    aml_v2_service.next_outcome = Outcome(statuses=TO_FAILED)
    bad = v2.submit(dataclasses.replace(spec, experiment="other"))
    v2.wait(good, poll=0)
    v2.wait(bad, poll=0)

    code, out, _ = himl(v2, "status", "all", "--json")
    rows = json.loads(out)
    assert code == 0
    assert [(row["run_id"], row["status"], row["failure_kind"]) for row in rows] == [
        (good.run_id, "Completed", ""),
        (bad.run_id, "Failed", "user_error"),
    ]
    assert rows[0]["recovery_id"] == f"train:{good.run_id}"  # the job name is the run id
    assert rows[0]["portal_url"] == good.portal_url
    assert rows[0]["portal_url"].startswith("https://ml.azure.com/runs/" + good.run_id)
    code, out, _ = himl(v2, "status", "lr=0.1", "good", "--json")
    assert [row["run_id"] for row in json.loads(out)] == [good.run_id]

    code, out, _ = himl(v2, "logs", good.run_id)  # user_logs/std_log.txt
    assert code == 0 and out.splitlines() == ["epoch 0", "epoch 1"]

    code, out, _ = himl(v2, "results", "good", "--dest", str(tmp_path / "got"))
    assert code == 0, out
    assert (tmp_path / "got/outputs/model.txt").read_bytes() == b"weights"
    assert not (tmp_path / "got/logs").exists()  # --prefix outputs/ by default
    assert out.startswith(f"1 file(s), 7 bytes from {good} into ")

    code, out, _ = himl(v2, "metrics", good.recovery_id, "--json")  # from MLflow
    assert json.loads(out)[good.recovery_id]["loss"] == [[0, 1.0], [1, 0.5], [2, 0.25]]

    code, _, err = himl(v2, "status", "no_such_run")
    assert code == 1
    assert err == "himl: no run matches 'no_such_run' in AzureML workspace 'ws-himl-v2' (SDK v2)\n"


def test_logs_follow_and_cancel_of_several(
    v2: AzureMLV2Backend, aml_v2_service: FakeAzureMLV2Service, spec: JobSpec
) -> None:
    lines = tuple(f"step {i}" for i in range(4))
    aml_v2_service.next_outcome = Outcome(
        statuses=("Starting", "Queued", "Running", "Running", "Running", "Running", "Completed"),
        log_lines=lines,
    )
    followed = v2.submit(spec)
    code, out, err = himl(v2, "logs", followed.run_id, "-f", "--timeout", "60")
    assert code == 0 and out.splitlines() == list(lines)
    assert f"run {followed} ended Completed" in err

    aml_v2_service.next_outcome = Outcome(statuses=KEEPS_RUNNING)
    running = [v2.submit(dataclasses.replace(spec, tags={"batch": "b"})) for _ in range(2)]
    code, out, _ = himl(v2, "cancel", "batch=b", input="n\n")
    assert code == 1 and "Cancel these 2 runs?" in out
    assert all(not v2.get_state(ref).is_terminal for ref in running)

    code, out, _ = himl(v2, "cancel", "batch=b", "--yes")
    assert code == 0
    assert out.splitlines() == [f"canceled {ref.recovery_id}" for ref in running]
    assert all(v2.get_state(ref).status is RunStatus.CANCELED for ref in running)


def test_resubmit_submits_the_kept_job_spec_resuming_from_the_lost_run(
    v2: AzureMLV2Backend, aml_v2_service: FakeAzureMLV2Service, spec: JobSpec
) -> None:
    aml_v2_service.next_outcome = Outcome(statuses=TO_FAILED)
    first = dataclasses.replace(spec, args=("--lr", "0.5"), display_name="lr-0.5", tags={"a": "b"})
    lost = v2.submit(first)
    v2.wait(lost, poll=0)
    # The spec is in the job's folder of the artifact store, outside the run's files.
    stored = aml_v2_service.store(ARTIFACT_DATASTORE).list(f"ExperimentRun/dcid.{lost.run_id}/")
    assert f"ExperimentRun/dcid.{lost.run_id}/{SPEC_FILE}" in [f.name for f in stored]
    assert v2.list_files(lost) == ["user_logs/std_log.txt"]

    code, out, err = himl(v2, "resubmit", "lr-0.5")

    assert code == 0, err
    new_name = out.split(" as ")[-1].strip()
    assert out.strip() == f"resubmitted {lost} as {new_name}"
    new = v2.get_run_ref(new_name)
    assert v2.submitted_spec(new) == first.resuming_from(lost.recovery_id)
    job = aml_v2_service.job(new.run_id)
    assert job.command.endswith("--lr 0.5") and job.display_name == "lr-0.5"
    assert job.environment_variables["HIML_RESUME_FROM"] == lost.recovery_id


def test_resubmit_refuses_what_keeps_no_spec_and_a_run_still_going(
    v2: AzureMLV2Backend, aml_v2_service: FakeAzureMLV2Service, spec: JobSpec
) -> None:
    ref = v2.submit(spec)
    v2.wait(ref, poll=0)
    # A job made otherwise (SDK v1, the studio, an older himl-tasks) has no spec in its files.
    v2.run_files(ref).delete("himl/")

    code, _, err = himl(v2, "resubmit", ref.run_id)

    assert code == 2
    assert f"run '{ref}' keeps no job spec" in err
    assert f"resume_from='{ref.recovery_id}'" in err
    aml_v2_service.next_outcome = Outcome(statuses=KEEPS_RUNNING)
    going = v2.submit(spec)
    code, _, err = himl(v2, "resubmit", going.run_id)
    assert code == 2 and "not resubmitting runs still going" in err
    assert len(aml_v2_service.jobs) == 2


def test_metrics_of_a_sweep_show_its_trials_side_by_side_and_resubmit_refuses_it(
    v2: AzureMLV2Backend, aml_v2_service: FakeAzureMLV2Service, spec: JobSpec
) -> None:
    aml_v2_service.outcomes["train.py"] = Outcome(
        children=(
            Outcome(metrics={"loss": [0.9, 0.4]}),
            Outcome(metrics={"loss": [0.8, 0.2]}),
        )
    )
    sweep = SweepSpec(
        parameters={"lr": Choice(0.1, 0.01)}, primary_metric="loss", goal="minimize",
        sampling="grid", max_total_runs=2,
    )  # fmt: skip
    ref = v2.submit_sweep(dataclasses.replace(spec, display_name="sweep"), sweep)
    assert v2.wait(ref, poll=0).succeeded
    trials = v2.child_runs(ref)

    code, out, _ = himl(v2, "metrics", "sweep", "--json")
    assert code == 0
    by_run = json.loads(out)
    assert list(by_run) == [ref.recovery_id, *(t.recovery_id for t in trials)]
    assert [by_run[t.recovery_id]["loss"] for t in trials] == [
        [[0, 0.9], [1, 0.4]],
        [[0, 0.8], [1, 0.2]],
    ]
    code, out, _ = himl(v2, "metrics", "sweep", "--best", "loss")
    assert code == 0 and out.splitlines()[-1] == f"* best loss: {trials[1].recovery_id}"

    code, _, err = himl(v2, "resubmit", ref.run_id)
    assert code == 2 and f"run '{ref}' is a sweep job" in err


def test_datasets_with_what_made_each_version_and_datastores(
    v2: AzureMLV2Backend, aml_v2_service: FakeAzureMLV2Service, spec: JobSpec, tmp_path: Path
) -> None:
    store = v2.datastore()
    (tmp_path / "data").mkdir()
    (tmp_path / "data/a.csv").write_text("1\n")
    store.upload_folder(tmp_path / "data", "digits/v1")
    store.upload_folder(tmp_path / "data", "digits/v2")
    v2.register_dataset("digits", "", "digits/v1")
    v2.register_dataset("digits", "", "digits/v2", created_by_run="prep_1_abc")
    # A job's output: AzureML registers it as the next version itself, with no tag of ours.
    made = v2.submit(dataclasses.replace(spec, output_datasets=["digits"]))
    assert v2.wait(made, poll=0).succeeded

    code, out, _ = himl(v2, "datasets", "digits", "--json")
    assert code == 0
    assert json.loads(out) == [
        {"name": "digits", "version": 1, "datastore": store.name, "path": "digits/v1",
         "created_by_run": None},
        {"name": "digits", "version": 2, "datastore": store.name, "path": "digits/v2",
         "created_by_run": "prep_1_abc"},
        {"name": "digits", "version": 3, "datastore": store.name,
         "path": f"digits/{made.run_id}", "created_by_run": made.run_id},
    ]  # fmt: skip
    code, out, _ = himl(v2, "datasets", "--json")
    assert [(row["name"], row["version"]) for row in json.loads(out)] == [("digits", 3)]

    code, out, _ = himl(v2, "datastores", "--json")
    assert code == 0
    rows = json.loads(out)
    assert [row["name"] for row in rows] == ["workspaceartifactstore", "workspaceblobstore"]
    assert aml_v2_service.azurite.account_key not in out


def test_a_job_whose_spec_cannot_be_kept_is_still_submitted_and_resubmit_says_so(
    v2: AzureMLV2Backend,
    aml_v2_service: FakeAzureMLV2Service,
    spec: JobSpec,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The artifact store refuses writes (a read-only SAS, missing permissions), as Azure
    # Storage answers: 403 AuthorizationPermissionMismatch, which the engine raises as
    # StorageAccessError. Only resubmitting needs the spec; the job is submitted all the same.
    # (Writes into a job's folder go through a FolderView of the store; only this one writes.)
    def refused(*args: object, **kwargs: object) -> None:
        raise StorageAccessError(
            "workspaceartifactstore", "PUT refused (403 AuthorizationPermissionMismatch)"
        )

    monkeypatch.setattr(FolderView, "upload_files", refused)
    ref = v2.submit(spec)
    assert v2.wait(ref, poll=0).succeeded
    assert f"job {ref.run_id}: its job spec could not be kept" in caplog.text

    code, _, err = himl(v2, "resubmit", ref.run_id)
    assert code == 2 and f"run '{ref}' keeps no job spec" in err
