"""The AzureML v2 in-job half: the job from AzureML's variables, metrics into real MLflow."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from himl_tasks import job_variables
from himl_tasks.errors import ConfigurationError, InvalidInputError
from himl_tasks.runtime import (
    RUN_CONTEXT,
    current_run,
    get_run_info,
    log_metric,
    log_metrics,
    report_progress,
)
from tests.backends.mlflow_store import MlflowStore

# MLflow 3.17's SQL store (the stand-in's tracking server) uses loader options SQLAlchemy 2.1
# deprecates; the warnings are the library's.
pytestmark = pytest.mark.filterwarnings(
    "ignore:The ``noload`` loader strategy is deprecated:DeprecationWarning"
)


@pytest.fixture
def store(tmp_path: Path) -> MlflowStore:
    return MlflowStore(tmp_path / "mlflow")


@pytest.fixture
def v2_job(store: MlflowStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """This process as a v2 job `train_1` of experiment `digits`, in its working folder."""
    for name in list(os.environ):
        if name.startswith(("HIML_", "AZUREML_", "AZURE_ML_", "MLFLOW_")):
            monkeypatch.delenv(name)
    # A fresh MLflow run id per test: MLflow caches a run's artifact store by its id.
    store.run_id = store.create_run("digits", f"mlflow_{uuid.uuid4().hex}")
    working = tmp_path / "wd"
    working.mkdir()
    monkeypatch.chdir(working)
    for name, value in {
        "HIML_IN_JOB": job_variables.AZUREML_V2_IN_JOB,
        "AZUREML_RUN_ID": "train_1",
        "AZUREML_ARM_PROJECT_NAME": "digits",
        "MLFLOW_TRACKING_URI": store.tracking_uri,
        "MLFLOW_RUN_ID": store.run_id,
    }.items():
        monkeypatch.setenv(name, value)
    return working


def test_metrics_of_a_v2_job_go_to_its_mlflow_run(v2_job: Path, store: MlflowStore) -> None:
    run = current_run()
    assert run is not None
    assert (run.run_id, run.experiment, run.attempt) == ("train_1", "digits", 1)

    log_metrics({"loss": 1.0, "accuracy": 0.5}, step=0)
    log_metrics({"loss": 0.5}, step=1)
    log_metric("test_accuracy", 0.97)
    report_progress(2, 4)
    RUN_CONTEXT.log("note", "lr warmup on")  # hi-ml's run: text is kept, as text
    RUN_CONTEXT.log_list("series", [3, 4])

    assert store.metric_history(store.run_id, "loss") == [(1.0, 0), (0.5, 1)]
    assert store.metric_history(store.run_id, "accuracy") == [(0.5, 0)]
    assert store.metric_history(store.run_id, "test_accuracy") == [(0.97, 0)]
    assert store.metric_history(store.run_id, "epochs_done") == [(2.0, 2)]
    assert store.metric_history(store.run_id, "series") == [(3.0, 0), (4.0, 1)]
    assert store.tags(store.run_id)["himl.text.note"] == "lr warmup on"
    # What the backend reads back (AzureMLV2Backend.get_metrics): numbers, then text as text.
    from himl_tasks.backends.azureml_v2.metrics import read_mlflow_metrics

    read_back = read_mlflow_metrics(store.tracking_uri, store.run_id)
    read = [(m.name, m.value, m.step) for m in read_back]
    assert read[:3] == [("loss", 1.0, 0), ("loss", 0.5, 1), ("accuracy", 0.5, 0)]
    assert read[-1] == ("note", "lr warmup on", None)


def test_an_image_is_kept_among_the_jobs_mlflow_artifacts(v2_job: Path, store: MlflowStore) -> None:
    image = v2_job / "plot.png"
    image.write_bytes(b"\x89PNG fake")

    RUN_CONTEXT.log_image("confusion matrix", path=str(image))

    kept = store.artifact_folder(store.run_id) / "images" / "confusion_matrix.png"
    assert kept.read_bytes() == b"\x89PNG fake"


def test_run_context_is_azureml_s_run_as_hi_ml_scripts_use_it(
    v2_job: Path, store: MlflowStore
) -> None:
    from himl_tasks.runtime import is_running_in_azure_ml

    assert is_running_in_azure_ml(RUN_CONTEXT)  # as with hi-ml's RUN_CONTEXT in a v2 job
    assert (RUN_CONTEXT.id, RUN_CONTEXT.experiment.name) == ("train_1", "digits")
    RUN_CONTEXT.tag("stage", "fine-tune")
    RUN_CONTEXT.set_tags({"seed": 3})
    (v2_job / "notes.txt").write_text("kept")
    RUN_CONTEXT.upload_file("reports/notes.txt", str(v2_job / "notes.txt"))

    assert {"stage": "fine-tune", "seed": "3"}.items() <= RUN_CONTEXT.get_tags().items()
    kept = store.artifact_folder(store.run_id) / "reports" / "notes.txt"
    assert kept.read_text() == "kept"


def test_a_name_mlflow_refuses_is_one_clear_error(v2_job: Path) -> None:
    with pytest.raises(InvalidInputError, match="MLflow refused the metrics \\['loss!'\\]"):
        log_metrics({"loss!": 1.0})


def test_inputs_and_outputs_are_where_azureml_says(
    v2_job: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AZURE_ML_INPUT_INPUT_0", str(tmp_path / "in0"))
    monkeypatch.setenv("AZURE_ML_INPUT_INPUT_1", str(tmp_path / "in1"))
    monkeypatch.setenv("AZURE_ML_INPUT_INPUT_3", str(tmp_path / "in3"))  # after a gap: not ours
    monkeypatch.setenv("AZURE_ML_OUTPUT_OUTPUT_0", str(tmp_path / "out0"))

    info = get_run_info()

    assert info.input_datasets == [tmp_path / "in0", tmp_path / "in1"]
    assert info.output_datasets == [tmp_path / "out0"]
    assert (info.output_folder, info.logs_folder) == (v2_job / "outputs", v2_job / "logs")
    assert info.is_running_in_azure_ml and info.run is RUN_CONTEXT


@pytest.mark.parametrize("missing", ["MLFLOW_RUN_ID", "MLFLOW_TRACKING_URI", "AZUREML_RUN_ID"])
def test_a_variable_azureml_always_sets_missing_is_one_clear_error(
    v2_job: Path, missing: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(missing)
    with pytest.raises(ConfigurationError, match=f"{missing} is not set.*AzureML v2 job"):
        current_run()


def test_mlflow_is_imported_only_when_a_value_is_logged(v2_job: Path) -> None:
    script = (
        "import sys\n"
        "from himl_tasks.runtime import current_run, get_run_info\n"
        "get_run_info(); current_run()\n"
        "print('mlflow' in sys.modules)\n"
    )
    shown = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120
    )
    assert shown.stdout.strip() == "False"


def test_a_resubmitted_v2_job_fetches_the_resumed_jobs_latest_checkpoint(
    v2_job: Path,
    aml_v2: Any,
    aml_v2_service: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from himl_tasks.backends.azureml_v2 import in_job
    from himl_tasks.job_spec import JobSpec
    from himl_tasks.runtime import find_latest_recovery_checkpoint
    from tests.backends.azureml_v2_service import PREEMPTION_ERROR, TO_FAILED, Outcome

    project = v2_job.parent / "project"
    project.mkdir()
    (project / "train.py").write_text("print(1)\n")
    (project / "environment.yml").write_text("dependencies:\n  - python=3.11\n")
    aml_v2_service.next_outcome = Outcome(
        statuses=TO_FAILED,
        error=PREEMPTION_ERROR,
        files={
            "outputs/checkpoints/recovery_epoch=3.ckpt": b"epoch 3",
            "outputs/checkpoints/recovery_epoch=4.ckpt": b"epoch 4",
        },
    )
    spec = JobSpec(entry_script="train.py", snapshot_root=project, compute="cpu-cluster")
    lost = aml_v2.wait(aml_v2.submit(spec), poll=0).ref
    (v2_job / "outputs" / "checkpoints").mkdir(parents=True)
    monkeypatch.setenv("HIML_RESUME_FROM", lost.recovery_id)
    monkeypatch.setattr(in_job, "job_workspace_backend", lambda: aml_v2)

    found = find_latest_recovery_checkpoint("outputs/checkpoints")

    assert found is not None and found.name == "recovery_epoch=4.ckpt"
    assert found.read_bytes() == b"epoch 4"
    assert [p.name for p in (v2_job / "outputs/checkpoints").iterdir()] == [found.name]


def test_the_jobs_workspace_backend_is_the_one_azureml_names_in_the_job(
    v2_job: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from himl_tasks.backends.azureml_v2 import in_job

    for name, value in {
        "AZUREML_ARM_SUBSCRIPTION": "11111111-2222-3333-4444-555555555555",
        "AZUREML_ARM_RESOURCEGROUP": "rg-job",
        "AZUREML_ARM_WORKSPACE_NAME": "ws-job",
    }.items():
        monkeypatch.setenv(name, value)

    backend = in_job.job_workspace_backend()  # built offline: no request is made

    assert backend.workspace_key() == (
        "azureml_v2:11111111-2222-3333-4444-555555555555/rg-job/ws-job"
    )


@pytest.mark.parametrize(
    ("values", "step", "says"),
    [
        pytest.param({"loss": 1.0}, 2**63, "step", id="step-beyond-int64"),
        pytest.param({"loss": 1.0}, -(2**63) - 1, "step", id="step-below-int64"),
        pytest.param({"loss": 10**400}, 0, "float", id="int-too-big-for-a-float"),
    ],
)
def test_a_value_or_step_mlflow_cannot_keep_is_one_clear_error_and_nothing_is_logged(
    v2_job: Path, store: MlflowStore, values: dict[str, Any], step: int, says: str
) -> None:
    # MLflow keeps a step as a 64-bit integer and a value as a float: before, these reached
    # the store and came back as its SQL error or Python's OverflowError.
    with pytest.raises(InvalidInputError, match=says):
        log_metrics({"ok": 2.0, **values}, step=step)

    assert store.metric_history(store.run_id, "ok") == []


@pytest.mark.parametrize(
    "name", ["../escape.txt", "/abs/x.txt", "a/../../b.txt", "dir/", "", "C:\\x\\y.txt"]
)
def test_a_file_name_that_is_no_relative_file_path_is_one_clear_error(
    v2_job: Path, store: MlflowStore, name: str
) -> None:
    # Before: MLflow's own "Invalid artifact path" error, or IsADirectoryError for "dir/".
    (v2_job / "notes.txt").write_text("kept")

    with pytest.raises(InvalidInputError, match="upload_file"):
        RUN_CONTEXT.upload_file(name, str(v2_job / "notes.txt"))
