"""preprocess-then-train on AzureML SDK v2: the executing stand-in, one preemption, a resume.

The flow runs as its deployment `preprocess-then-train/azureml-v2` would run it, on a saved
`AzureMLWorkspace` block with the SDK v2 choice, against a real Prefect API; its backend is
`AzureMLV2Backend` on the v2 service stand-in whose jobs really run (their storage Azurite,
their metrics a real MLflow store): the only replacement is the service behind the block.
The low-priority training job is preempted once, after its second epoch, as AzureML reports
it; the flow resubmits it, and the new job resumes from the lost job's last recovery
checkpoint, fetched from that job's files through the transfer engine.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from himl_tasks.backends.azureml_v2 import AzureMLV2Backend
from tests.backends.azureml_v2_execution import ExecutingAzureMLV2Service
from tests.backends.azureml_v2_service import PREEMPTION_ERROR
from tests.backends.job_process import Preemption
from tests.conftest import MLFLOW_WARNINGS

pytestmark = MLFLOW_WARNINGS
EPOCHS = 4


def test_the_flow_runs_on_v2_through_one_preemption_and_resumes_from_the_last_checkpoint(
    v2_workspace: tuple[str, AzureMLV2Backend],
    v2_service: ExecutingAzureMLV2Service,
    tmp_path: Path,
) -> None:
    from flows.preprocess_then_train import preprocess_then_train

    block, backend = v2_workspace
    v2_service.preemptions.append(
        Preemption("flows/jobs/train.py", after_metric=("train_loss", 2), max_preemptions=1)
    )

    result = preprocess_then_train(
        workspace_block=block,
        preprocess_compute="cpu-cluster",
        train_compute="spot-cluster",
        low_priority=True,
        epochs=EPOCHS,
        epoch_seconds=1.0,  # a poll sees the second epoch long before the last one
        retry_delay_seconds=0,
        results_folder=str(tmp_path / "results"),
    )

    assert result["raw_dataset"] == "digits_raw:1"
    assert result["features_dataset"] == "digits_features:1"
    lost, resumed = result["train_attempts"]  # preempted once, resubmitted
    lost_job = lost.split(":")[1]
    assert v2_service.run_details(lost_job)["error"] == PREEMPTION_ERROR
    lost_kind = backend.get_state(backend.get_run_ref(lost)).failure_kind
    assert lost_kind is not None and lost_kind.value == "preempted"
    assert resumed == result["train_run"]
    resumed_ref = backend.get_run_ref(resumed)
    assert backend.get_state(resumed_ref).status.value == "Completed"
    log = backend.read_log(resumed_ref, 0).decode()
    assert any(f"resuming from recovery_epoch={epoch}.ckpt" in log for epoch in (1, 2)), log
    assert result["epochs_trained"] <= EPOCHS + 1
    assert result["test_accuracy"] >= 0.9
    assert Path(result["checkpoint"]).is_file()
    # The features are the preprocessing job's output, registered when it completed.
    features = v2_service.data("digits_features", 1)
    preprocess_job = result["preprocess_run"].split(":")[1]
    assert str(features.path).endswith(f"/paths/digits_features/{preprocess_job}/")
    lost_log = backend.read_log(backend.get_run_ref(lost), 0).decode()
    assert "epoch 1:" in lost_log and f"epoch {EPOCHS - 1}:" not in lost_log


def test_on_v2_low_priority_on_a_dedicated_cluster_is_refused_before_any_side_effect(
    v2_workspace: tuple[str, AzureMLV2Backend],
    v2_service: ExecutingAzureMLV2Service,
) -> None:
    """It was refused only when the training job was submitted, after preprocessing ran."""
    from flows.preprocess_then_train import preprocess_then_train
    from himl_tasks.errors import InvalidInputError

    block, backend = v2_workspace

    with pytest.raises(InvalidInputError, match="a low-priority job needs a low-priority cluster"):
        preprocess_then_train(
            workspace_block=block,
            preprocess_compute="cpu-cluster",
            train_compute="cpu-cluster",  # dedicated
            low_priority=True,
        )

    assert backend.datastore("").list("") == []
    assert v2_service.jobs == {} and v2_service.data_assets == {}
