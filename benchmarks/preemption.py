"""Epochs trained when training is preempted once about half-way: resuming vs starting over.

Run: `python -m benchmarks.preemption [--epochs N]`. Against a real Prefect API (a temporary
server), preprocess-then-train runs three times, each on a fresh local workspace:
1. on an ordinary cluster, to time the training job's epochs;
2. on a low-priority cluster that preempts one attempt (SIGKILL) about half-way through the
   epochs; the job is resubmitted and resumes from its latest recovery checkpoint;
3. the same, but the resubmitted job starts again from scratch.
Printed: the epochs each trained in all, against the targets (resume: at most planned + 1;
from scratch: about planned x 1.5).
"""

from __future__ import annotations

import argparse
import tempfile
import uuid
from pathlib import Path
from typing import Any

EPOCH_SECONDS = 1.0


def run_flow(folder: Path, epochs: int, **parameters: Any) -> tuple[dict[str, Any], Any]:
    """Runs the flow on a fresh workspace; returns its result and the workspace's backend."""
    from flows.preprocess_then_train import preprocess_then_train
    from himl_tasks.backends.local.backend import LocalBackend
    from himl_tasks.backends.local.clusters import Preemption
    from himl_tasks.prefect.blocks import LocalWorkspace

    name = f"bench-{uuid.uuid4().hex[:8]}"
    LocalWorkspace(root=str(folder / name)).save(name)
    backend = LocalBackend(folder / name)
    preempt_after = parameters.pop("preempt_after", None)
    if preempt_after is not None:
        backend.create_compute_cluster(
            "spot",
            preemption=Preemption(after_seconds=preempt_after, mode="fail", max_preemptions=1),
        )
        parameters.update(train_compute="spot", low_priority=True)
    result = preprocess_then_train(
        workspace_block=f"local-workspace/{name}",
        epochs=epochs,
        epoch_seconds=EPOCH_SECONDS,
        retry_delay_seconds=0,
        results_folder=str(folder / f"{name}-results"),
        **parameters,
    )
    return result, backend


def half_way_seconds(backend: Any, recovery_id: str, epochs: int) -> float:
    """Seconds from the training job's start until half of its epochs are logged, plus half
    an epoch (so that the preemption falls in the middle of an epoch)."""
    ref = backend.get_run_ref(recovery_id)
    running = next(when for _, status, when in backend.status_history(ref) if status == "Running")
    logged = [m.time for m in backend.get_metrics(ref) if m.name == "train_loss"]
    return (logged[epochs // 2 - 1] - running).total_seconds() + EPOCH_SECONDS / 2


def trained_epochs(backend: Any, attempts: list[str]) -> list[int]:
    """The epochs each attempt of the training job trained, in order."""
    return [
        len([m for m in backend.get_metrics(backend.get_run_ref(a)) if m.name == "train_loss"])
        for a in attempts
    ]


def main() -> None:
    """Runs the three trainings and prints the epochs trained."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=10)
    args = parser.parse_args()
    from prefect.testing.utilities import prefect_test_harness

    planned = args.epochs
    with (
        prefect_test_harness(server_startup_timeout=60),
        tempfile.TemporaryDirectory(prefix="himl-preemption-bench-") as folder,
    ):
        plain, backend = run_flow(Path(folder), planned)
        preempt_after = half_way_seconds(backend, plain["train_run"], planned)
        rows = []
        for label, resume in (("resume from checkpoint", True), ("restart from scratch", False)):
            result, backend = run_flow(
                Path(folder), planned, preempt_after=preempt_after, resume=resume
            )
            per_attempt = trained_epochs(backend, result["train_attempts"])
            rows.append((label, per_attempt, sum(per_attempt), result["test_accuracy"]))
    print(f"planned epochs: {planned}; preempted once, {preempt_after:.1f} s into training")
    for label, per_attempt, total, accuracy in rows:
        print(
            f"{label:24s} epochs per attempt {per_attempt}, total {total} "
            f"({total / planned:.2f}x planned), test accuracy {accuracy:.4f}"
        )
    resumed, scratch = rows[0][2], rows[1][2]
    print(
        f"resume: {resumed} <= planned + 1 = {planned + 1}: "
        f"{'met' if resumed <= planned + 1 else 'MISSED'}; from scratch: {scratch} "
        f"(planned x 1.5 = {planned * 1.5:g})"
    )


if __name__ == "__main__":
    main()
