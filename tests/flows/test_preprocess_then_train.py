"""The preprocess-then-train flow against a real Prefect API and real local jobs."""

from __future__ import annotations

from pathlib import Path

from flows.preprocess_then_train import preprocess_then_train
from himl_tasks.backends.local.backend import LocalBackend
from himl_tasks.runs import RunStatus


def test_the_chain_hands_the_new_dataset_version_to_training(
    workspace: tuple[str, LocalBackend], tmp_path: Path
) -> None:
    block, backend = workspace
    result = preprocess_then_train(
        workspace_block=block, epochs=12, results_folder=str(tmp_path / "results")
    )
    assert result["raw_dataset"] == "digits_raw:1"
    assert result["features_dataset"] == "digits_features:1"
    train_ref = backend.get_run_ref(result["train_run"])
    preprocess_ref = backend.get_run_ref(result["preprocess_run"])
    assert backend.get_state(train_ref).status is RunStatus.COMPLETED
    versions = backend.dataset_versions("digits_features")
    assert [v["created_by_run"] for v in versions] == [preprocess_ref.run_id]
    assert result["test_accuracy"] >= 0.95
    assert result["epochs_trained"] == 12
    assert Path(result["checkpoint"]).is_file()

    again = preprocess_then_train(workspace_block=block, skip_if_unchanged=True)
    assert again == {"skipped": True, "raw_dataset": "digits_raw:1"}
    rerun = preprocess_then_train(workspace_block=block, results_folder=str(tmp_path / "r2"))
    assert (rerun["preprocess_run"], rerun["train_run"]) == (
        result["preprocess_run"],
        result["train_run"],
    )  # the same jobs on the same data: found, not submitted again
    assert rerun["reused_runs"] == [result["preprocess_run"], result["train_run"]]
    assert result["reused_runs"] == []
    assert len(backend.registry.runs()) == 2
