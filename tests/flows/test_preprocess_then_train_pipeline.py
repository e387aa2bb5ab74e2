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
from tests.flows.native_pipeline_checks import check_resumed_once

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

    check_resumed_once(result, backend, EPOCHS)
    # The features version the training step read is the one its preprocessing step wrote.
    preprocess = backend.get_run_ref(result["preprocess_run"])
    assert [(d.name, d.version) for d in backend.run_outputs(preprocess)] == [
        ("digits_features", 1)
    ]

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
