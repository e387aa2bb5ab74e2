"""The run object hi-ml's users get: azureml's Run on AzureML v1, a Run-like object elsewhere."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from himl_tasks.backends.azureml_v1 import AzureMLV1Backend
from himl_tasks.backends.local.backend import LocalBackend
from himl_tasks.errors import JobFailedError, RemoteFilesNotFoundError
from himl_tasks.himl.run_objects import BackendRun, run_object
from himl_tasks.job_spec import JobSpec
from himl_tasks.runs import RunRef
from tests.backends.azureml_service import FakeAzureMLService, FakeRun, Outcome
from tests.backends.conftest import azureml_job, write_script

TRAIN = """
from pathlib import Path
from himl_tasks.runtime import log_metric

for epoch, loss in enumerate([1.0, 0.5]):
    log_metric("loss", loss, step=epoch)
log_metric("accuracy", 0.9)
Path("outputs/sub").mkdir(parents=True)
Path("outputs/model.txt").write_text("weights")
Path("outputs/model.txt.bak").write_text("old weights")
Path("outputs/sub/b.txt").write_text("b")
print("trained")
"""


def test_a_local_run_offers_azureml_run_members_on_the_backend(
    backend: LocalBackend, project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_script(project, "train.py", TRAIN)
    ref = backend.submit(
        JobSpec(entry_script="train.py", snapshot_root=project, tags={"team": "vision"})
    )
    run = run_object(backend, ref)
    assert isinstance(run, BackendRun)
    assert (run.id, run.experiment.name, run.display_name) == (ref.run_id, "train", ref.run_id)

    details = run.wait_for_completion(show_output=True, timeout_seconds=60)

    assert "trained" in capsys.readouterr().out  # the log, streamed as azureml does
    assert details["runId"] == ref.run_id and details["status"] == "Completed"
    assert {"startTimeUtc", "endTimeUtc"} <= set(details) and "error" not in details
    assert run.status == run.get_status() == "Completed"
    # azureml's get_metrics: one value as is, a name logged again as a list in logged order.
    assert run.get_metrics() == {"loss": [1.0, 0.5], "accuracy": 0.9}
    assert run.get_metrics("accuracy") == {"accuracy": 0.9}
    assert run.get_tags()["team"] == "vision"
    assert {"outputs/model.txt", "outputs/sub/b.txt"} <= set(run.get_file_names())
    assert run.get_portal_url() == ref.portal_url != ""

    run.download_file("outputs/model.txt", tmp_path / "one" / "model.txt")
    assert [p.name for p in (tmp_path / "one").iterdir()] == ["model.txt"]  # not the .bak
    assert (tmp_path / "one" / "model.txt").read_text() == "weights"
    run.download_files("outputs/sub", tmp_path / "many")
    assert (tmp_path / "many" / "outputs" / "sub" / "b.txt").read_text() == "b"
    with pytest.raises(RemoteFilesNotFoundError, match="no file 'outputs/nothing.txt'"):
        run.download_file("outputs/nothing.txt", tmp_path / "x")
    with pytest.raises(FileNotFoundError):  # azureml: fail_on_not_found=True
        run.download_files("outputs/nothing", tmp_path / "none")
    assert run.get_children() == []


def test_a_failed_local_run_raises_on_wait_unless_told_not_to(
    backend: LocalBackend, project: Path
) -> None:
    write_script(project, "boom.py", "import sys\nsys.exit('labels are wrong')\n")
    run = run_object(
        backend, backend.submit(JobSpec(entry_script="boom.py", snapshot_root=project))
    )

    with pytest.raises(JobFailedError, match="labels are wrong"):
        run.wait_for_completion(timeout_seconds=60)
    details = run.wait_for_completion(raise_on_error=False, timeout_seconds=60)
    assert details["status"] == "Failed"
    assert "labels are wrong" in json.dumps(details["error"])


def test_on_azureml_the_run_object_is_the_azureml_run_itself(
    aml: AzureMLV1Backend, aml_service: FakeAzureMLService, project: Path
) -> None:
    aml_service.next_outcome = Outcome(metrics={"loss": [1.0, 0.5]})
    ref = aml.submit(azureml_job(project, "print('hi')\n", "train.py"))

    run = run_object(aml, ref)

    assert isinstance(run, FakeRun) and run is aml_service.runs[ref.run_id]
    assert run.get_metrics() == {"loss": [1.0, 0.5]}
    assert aml.run_tags(ref) == aml_service.runs[ref.run_id].get_tags() != {}


def test_is_running_in_azure_ml_answers_for_this_process_or_a_run_as_hi_ml(
    backend: LocalBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    from himl_tasks import is_running_in_azure_ml

    class OfflineRun:  # azureml's _OfflineRun, outside AzureML: no experiment
        id = "OfflineRun_1"

    class AzureMLRun:  # azureml's Run: its experiment (azureml/core/run.py, Run.experiment)
        experiment = object()

    monkeypatch.delenv("AZUREML_RUN_ID", raising=False)
    assert not is_running_in_azure_ml()
    monkeypatch.setenv("AZUREML_RUN_ID", "train_1700000000_ab12cd34")
    assert is_running_in_azure_ml()
    assert is_running_in_azure_ml(AzureMLRun()) and not is_running_in_azure_ml(OfflineRun())
    # A local run's object names its experiment too, but is not AzureML's.
    local_run = run_object(backend, RunRef("exp", "exp_1_ab", "local"))
    assert local_run.experiment.name == "exp" and not is_running_in_azure_ml(local_run)
