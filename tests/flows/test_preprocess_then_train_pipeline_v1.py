"""preprocess-then-train as ONE native pipeline on AzureML SDK v1, through one preemption.

The flow runs as its deployment would, on a saved `AzureMLWorkspace` block with the SDK v1
choice, against a real Prefect API; its backend is `AzureMLV1Backend` on the v1 service
stand-in whose pipeline runs really execute their steps' jobs (tests/backends/
azureml_pipeline_service.py, azureml_execution.py). The training step's run is preempted
once, after its second epoch, with AzureML's PreemptionError: the pipeline run fails, and
the flow submits the pipeline again with the training step resuming from the lost run's
last recovery checkpoint, while the service reuses the completed preprocessing step (no
second features version).
"""

from __future__ import annotations

from pathlib import Path

from himl_tasks.backends.azureml_v1 import AzureMLV1Backend
from himl_tasks.runs import FailureKind, RunStatus
from tests.backends.azureml_service import PREEMPTION_ERROR, FakeAzureMLService, Preemption

EPOCHS = 4


def test_the_native_pipeline_runs_on_v1_through_one_preemption_reusing_preprocessing(
    v1_workspace: tuple[str, AzureMLV1Backend],
    v1_service: FakeAzureMLService,
    tmp_path: Path,
) -> None:
    from flows.preprocess_then_train import preprocess_then_train

    block, backend = v1_workspace
    v1_service.preemptions.append(
        Preemption("flows/jobs/train.py", after_metric=("train_loss", 2), max_preemptions=1)
    )

    result = preprocess_then_train(
        workspace_block=block,
        preprocess_compute="cpu-cluster",
        train_compute="gpu-cluster",
        low_priority=True,
        epochs=EPOCHS,
        epoch_seconds=1.0,  # a poll sees the second epoch long before the last one
        retry_delay_seconds=0,
        results_folder=str(tmp_path / "results"),
        native_pipeline=True,
    )

    assert result["native_pipeline"] is True
    assert result["raw_dataset"] == "digits_raw:1"
    lost, resumed = result["train_attempts"]  # preempted once, the pipeline resubmitted
    lost_ref = backend.get_run_ref(lost)
    assert v1_service.run(lost_ref.run_id).get_details()["error"] == PREEMPTION_ERROR
    assert backend.get_state(lost_ref).failure_kind is FailureKind.PREEMPTED
    assert resumed == result["train_run"]
    resumed_ref = backend.get_run_ref(resumed)
    assert backend.get_state(resumed_ref).status is RunStatus.COMPLETED
    log = backend.read_log(resumed_ref, 0).decode()
    assert any(f"resuming from recovery_epoch={epoch}.ckpt" in log for epoch in (1, 2)), log
    print(f"v1 native pipeline, epochs trained with one preemption: {result['epochs_trained']}")
    assert result["epochs_trained"] <= EPOCHS + 1
    assert result["test_accuracy"] >= 0.9
    assert Path(result["checkpoint"]).is_file()
    # The pipeline run that completed has both steps as child runs; the first one failed.
    pipeline = backend.get_run_ref(result["pipeline_run"])
    assert backend.get_state(pipeline).status is RunStatus.COMPLETED
    steps = {step.step: step for step in backend.pipeline_steps(pipeline)}
    assert list(steps) == ["preprocess", "train"]
    assert steps["train"].run == resumed_ref
    # The resubmitted pipeline reused the completed preprocessing step: one features version,
    # the one the first pipeline run's preprocessing registered, which the resumed training
    # read.
    preprocess = backend.get_run_ref(result["preprocess_run"])
    assert steps["preprocess"].reused_from == preprocess
    assert result["reused_runs"] == [result["preprocess_run"]]
    assert result["features_dataset"] == "digits_features:1"
    assert len(v1_service.datasets["digits_features"]) == 1
    assert [(d.name, d.version) for d in backend.run_inputs(resumed_ref)] == [
        ("digits_features", 1)
    ]
