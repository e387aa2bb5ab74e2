"""preprocess-then-train as ONE native pipeline on both AzureML stand-ins, through a preemption.

The flow runs as its deployment would, on a saved `AzureMLWorkspace` block (SDK v1, then
v2), against a real Prefect API; its backend is the SDK's backend on the executing stand-in,
whose pipeline runs really run their steps' jobs (v1: tests/backends/
azureml_pipeline_service.py with azureml_execution.py; v2: azureml_v2_pipeline_nodes.py with
azureml_v2_execution.py). The training step's job is preempted once, after its second epoch,
with AzureML's PreemptionError: the pipeline run fails, and the flow submits the pipeline
again with the training step resuming from the lost job's last recovery checkpoint (fetched
from inside the new job), while the service reuses the completed preprocessing step.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from himl_tasks.backends.azureml_v1 import AzureMLV1Backend
from himl_tasks.backends.azureml_v2 import AzureMLV2Backend
from tests.backends import azureml_service as v1
from tests.backends import azureml_v2_service as v2
from tests.backends.azureml_v2_execution import ExecutingAzureMLV2Service
from tests.backends.job_process import Preemption
from tests.conftest import MLFLOW_WARNINGS
from tests.flows.native_pipeline_checks import check_resumed_once

pytestmark = MLFLOW_WARNINGS
EPOCHS = 4
PREEMPTED_ONCE = Preemption("flows/jobs/train.py", after_metric=("train_loss", 2))


def run_flow(block: str, train_compute: str, tmp_path: Path) -> dict[str, Any]:
    from flows.preprocess_then_train import preprocess_then_train

    result: dict[str, Any] = preprocess_then_train(
        workspace_block=block,
        preprocess_compute="cpu-cluster",
        train_compute=train_compute,
        low_priority=True,
        epochs=EPOCHS,
        epoch_seconds=1.0,  # a poll sees the second epoch long before the last one
        retry_delay_seconds=0,
        results_folder=str(tmp_path / "results"),
        native_pipeline=True,
    )
    return result


def test_on_v1_the_preempted_training_step_resumes_and_preprocessing_is_reused(
    v1_workspace: tuple[str, AzureMLV1Backend], v1_service: v1.FakeAzureMLService, tmp_path: Path
) -> None:
    block, backend = v1_workspace
    v1_service.preemptions.append(PREEMPTED_ONCE)

    result = run_flow(block, "gpu-cluster", tmp_path)  # on v1 the cluster is low priority

    lost = check_resumed_once(result, backend, EPOCHS)
    assert v1_service.run(lost.run_id).get_details()["error"] == v1.PREEMPTION_ERROR
    assert len(v1_service.datasets["digits_features"]) == 1


def test_on_v2_the_preempted_training_step_resumes_and_preprocessing_is_reused(
    v2_workspace: tuple[str, AzureMLV2Backend],
    v2_service: ExecutingAzureMLV2Service,
    tmp_path: Path,
) -> None:
    block, backend = v2_workspace
    v2_service.preemptions.append(PREEMPTED_ONCE)

    result = run_flow(block, "spot-cluster", tmp_path)

    lost = check_resumed_once(result, backend, EPOCHS)
    assert v2_service.run_details(lost.run_id)["error"] == v2.PREEMPTION_ERROR
    assert len(v2_service.data_assets["digits_features"]) == 1
