"""preprocess-then-train as ONE native pipeline on the local backend, through one preemption.

The flow runs against a real Prefect API and real local jobs; its chain is one pipeline run
whose two steps are child runs. The low-priority training step is preempted once, right
after its second epoch (the local cluster's injectable preemption, as AzureML's low-priority
VMs are lost): the pipeline run fails, and the flow submits the pipeline again with the
training step resuming from its lost run's last recovery checkpoint.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
from prefect.client.schemas.sorting import ArtifactSort

from flows.preprocess_then_train import RESULT_ARTIFACT, preprocess_then_train
from himl_tasks.backends.local.backend import LocalBackend
from himl_tasks.backends.local.clusters import Preemption
from himl_tasks.runs import FailureKind, RunStatus

EPOCHS = 4


def test_a_preempted_training_step_is_resumed_by_resubmitting_the_pipeline(
    workspace: tuple[str, LocalBackend], tmp_path: Path
) -> None:
    block, backend = workspace
    backend.create_compute_cluster(
        "spot", preemption=Preemption(after_metric=("train_loss", 2), max_preemptions=1)
    )

    parameters: dict[str, Any] = {
        "workspace_block": block,
        "train_compute": "spot",
        "low_priority": True,
        "epochs": EPOCHS,
        "retry_delay_seconds": 0,
        "native_pipeline": True,
    }

    result = preprocess_then_train(**parameters, results_folder=str(tmp_path / "results"))

    assert result["native_pipeline"] is True
    assert result["raw_dataset"] == "digits_raw:1"
    lost, resumed = result["train_attempts"]  # preempted once, the pipeline resubmitted
    lost_state = backend.get_state(backend.get_run_ref(lost))
    assert lost_state.failure_kind is FailureKind.PREEMPTED
    assert resumed == result["train_run"]
    resumed_ref = backend.get_run_ref(resumed)
    assert backend.get_state(resumed_ref).status is RunStatus.COMPLETED
    log = backend.read_log(resumed_ref, 0).decode()
    assert any(f"resuming from recovery_epoch={epoch}.ckpt" in log for epoch in (1, 2)), log
    print(f"epochs trained with one preemption: {result['epochs_trained']} of {EPOCHS}")
    assert result["epochs_trained"] <= EPOCHS + 1
    assert result["test_accuracy"] >= 0.9
    assert Path(result["checkpoint"]).is_file()
    # Both steps are child runs of the pipeline run that completed, the training step the
    # resumed run; the first pipeline run failed with its training step.
    pipeline = backend.get_run_ref(result["pipeline_run"])
    assert backend.get_state(pipeline).status is RunStatus.COMPLETED
    steps = {step.step: step for step in backend.pipeline_steps(pipeline)}
    assert list(steps) == ["preprocess", "train"]
    assert steps["train"].run == resumed_ref
    # The training step read the features version its preprocessing step wrote.
    features = result["features_dataset"].split(":")
    assert {d.name: d.version for d in backend.run_inputs(resumed_ref)} == {
        features[0]: int(features[1])
    }
    preprocess = backend.get_run_ref(result["preprocess_run"])
    assert [(d.name, d.version) for d in backend.run_outputs(preprocess)] == [
        (features[0], int(features[1]))
    ]
    # The resubmitted pipeline reused the completed preprocessing step: no second version.
    assert result["features_dataset"] == "digits_features:1"
    assert steps["preprocess"].reused_from == preprocess
    assert result["reused_runs"] == [result["preprocess_run"]]

    # A flow re-run (after a crash, say) walks the same chain to the completed pipeline run.
    again = preprocess_then_train(**parameters, results_folder=str(tmp_path / "again"))
    assert again["pipeline_run"] == result["pipeline_run"]
    with get_client(sync_client=True) as client:
        (shown, *_) = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[RESULT_ARTIFACT])),
            sort=ArtifactSort.CREATED_DESC,
            limit=1,
        )
    assert f"Run as one native pipeline: pipeline run {result['pipeline_run']}." in str(shown.data)
    assert again["train_run"] == result["train_run"]
