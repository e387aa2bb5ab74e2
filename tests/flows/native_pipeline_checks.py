"""What preprocess-then-train as one native pipeline must show after one preemption, on any
backend: the training step resumed by a resubmitted pipeline, the preprocessing step reused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from himl_tasks.backends.base import Backend
from himl_tasks.runs import FailureKind, RunRef, RunStatus


def check_resumed_once(result: dict[str, Any], backend: Backend, epochs: int) -> RunRef:
    """Checks the flow's result after its training step was preempted once.

    Returns:
        The training step's lost run.
    """
    assert result["native_pipeline"] is True
    assert result["raw_dataset"] == "digits_raw:1"
    lost, resumed = result["train_attempts"]  # preempted once, the pipeline resubmitted
    lost_ref = backend.get_run_ref(lost)
    assert backend.get_state(lost_ref).failure_kind is FailureKind.PREEMPTED
    assert resumed == result["train_run"]
    resumed_ref = backend.get_run_ref(resumed)
    assert backend.get_state(resumed_ref).status is RunStatus.COMPLETED
    log = backend.read_log(resumed_ref, 0).decode()
    # From the lost run's last recovery checkpoint (which epoch depends on when the
    # preemption landed: a loaded machine lets the job run further first).
    assert any(f"resuming from recovery_epoch={epoch}.ckpt" in log for epoch in range(epochs))
    print(
        f"{backend.name}: epochs trained with one preemption of the training step: "
        f"{result['epochs_trained']} of {epochs}"
    )
    assert result["epochs_trained"] <= epochs + 1
    assert result["test_accuracy"] >= 0.9
    assert Path(result["checkpoint"]).is_file()
    # The pipeline run that completed has both steps as child runs, the training step the
    # resumed run; the first pipeline run failed with its training step.
    pipeline = backend.get_run_ref(result["pipeline_run"])
    assert backend.get_state(pipeline).status is RunStatus.COMPLETED
    steps = {step.step: step for step in backend.pipeline_steps(pipeline)}
    assert list(steps) == ["preprocess", "train"]
    assert steps["train"].run == resumed_ref
    # The resubmitted pipeline reused the completed preprocessing step: no second features
    # version; the resumed training read the one the first pipeline run's step wrote.
    preprocess = backend.get_run_ref(result["preprocess_run"])
    assert steps["preprocess"].reused_from == preprocess
    assert result["reused_runs"] == [result["preprocess_run"]]
    assert result["features_dataset"] == "digits_features:1"
    assert [(d.name, d.version) for d in backend.run_inputs(resumed_ref)] == [
        ("digits_features", 1)
    ]
    return lost_ref
