"""Low-priority preemption on the local compute, in both of AzureML's behaviours."""

from __future__ import annotations

from pathlib import Path

from himl_tasks.backends.local.backend import LocalBackend
from himl_tasks.backends.local.clusters import Preemption
from himl_tasks.job_spec import JobSpec, Priority
from himl_tasks.runs import FailureKind, RunStatus
from tests.backends.conftest import write_script

# Trains 6 "epochs" of 0.15 s, writing a recovery checkpoint after each and resuming from the
# latest one; logs the epoch it starts from and each epoch's loss.
TRAINER = """
import time
from pathlib import Path
from himl_tasks.runtime import find_latest_recovery_checkpoint, get_run_info, log_metric

info = get_run_info()
checkpoints = info.output_folder / "checkpoints"
checkpoints.mkdir(exist_ok=True)
latest = find_latest_recovery_checkpoint(checkpoints)
start = int(latest.read_text()) + 1 if latest else 0
print(f"starting at epoch {start}", flush=True)
log_metric("start_epoch", start)
for epoch in range(start, 6):
    time.sleep(0.15)
    log_metric("loss", 1.0 / (epoch + 1), step=epoch)
    partial = checkpoints / f"recovery_epoch={epoch}.ckpt.tmp"
    partial.write_text(str(epoch))
    partial.rename(checkpoints / f"recovery_epoch={epoch}.ckpt")
"""


def low_priority(project: Path) -> JobSpec:
    write_script(project, "train.py", TRAINER)
    return JobSpec(
        entry_script="train.py",
        snapshot_root=project,
        compute="spot",
        priority=Priority.LOW_PRIORITY,
    )


def test_preemption_in_fail_mode_ends_the_run_failed_as_preempted(
    backend: LocalBackend, project: Path
) -> None:
    backend.create_compute_cluster("spot", preemption=Preemption(after_seconds=0.4))

    state = backend.wait(backend.submit(low_priority(project)))

    assert state.status is RunStatus.FAILED
    assert state.failure_kind is FailureKind.PREEMPTED
    assert "PreemptionError" in state.error
    assert state.attempt == 1


def test_preemption_in_restart_mode_resumes_the_same_run_from_its_checkpoint(
    backend: LocalBackend, project: Path
) -> None:
    backend.create_compute_cluster(
        "spot",
        preemption=Preemption(after_seconds=0.6, mode="restart", restart_delay_seconds=0.2),
    )

    ref = backend.submit(low_priority(project))
    state = backend.wait(ref)

    assert state.succeeded, state.error
    assert state.attempt == 2
    attempts = backend.attempts(ref)
    assert [(a["status"], a["failure_kind"]) for a in attempts] == [
        ("Failed", "preempted"),
        ("Completed", None),
    ]
    assert [(a, s.value) for a, s, _ in backend.status_history(ref)] == [
        (1, "NotStarted"), (1, "Queued"), (1, "Preparing"), (1, "Running"), (1, "Failed"),
        (2, "Queued"), (2, "Preparing"), (2, "Running"), (2, "Finalizing"), (2, "Completed"),
    ]  # fmt: skip
    metrics = backend.get_metrics(ref)
    starts = [(m.attempt, m.value) for m in metrics if m.name == "start_epoch"]
    assert starts[0] == (1, 0.0) and starts[1][0] == 2 and starts[1][1] >= 1
    losses = [(m.attempt, m.step) for m in metrics if m.name == "loss"]
    trained_twice = {step for _, step in losses if [s for _, s in losses].count(step) > 1}
    assert trained_twice <= {int(starts[1][1])}  # at most the epoch cut short is redone
    assert {step for _, step in losses} == set(range(6))
    assert "outputs/checkpoints/recovery_epoch=5.ckpt" in backend.list_files(ref, "outputs")
    assert "----- attempt 2 -----" in list(backend.iter_logs(ref))


def test_dedicated_runs_are_never_preempted(backend: LocalBackend, project: Path) -> None:
    backend.create_compute_cluster("spot", preemption=Preemption(after_seconds=0.1))
    spec = low_priority(project)
    dedicated = JobSpec(entry_script=spec.entry_script, snapshot_root=project, compute="spot")

    state = backend.wait(backend.submit(dedicated))

    assert state.succeeded and state.attempt == 1
