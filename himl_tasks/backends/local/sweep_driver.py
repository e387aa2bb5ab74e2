"""The parent run of a local sweep: submits the trials, waits for them, logs the best value.

Started by `LocalBackend.submit_sweep` as the job of the parent run, with the sweep's plan
(`sweep.json`, a `SweepPlan`) in its snapshot. Canceling the parent cancels the trials still
running. It waits for its trials in the one polling loop (`watching.polls`), against the same
deadline as a backend's `wait` (`DEADLINE_SECONDS`): trials still running then are canceled
and the parent fails.
"""

from __future__ import annotations

import dataclasses
import math
import os
import signal
import sys
from pathlib import Path
from types import FrameType

from himl_tasks import job_variables
from himl_tasks.backends.local.backend import LocalBackend
from himl_tasks.backends.local.sweep_plan import TRIAL_SNAPSHOT_FOLDER, SweepPlan
from himl_tasks.backends.watching import DEFAULT_TIMEOUT_SECONDS, PollSchedule, polls
from himl_tasks.runs import RunRef, RunState
from himl_tasks.runtime import log_metrics

POLL_SECONDS = 0.2
DEADLINE_SECONDS = DEFAULT_TIMEOUT_SECONDS


def main(plan_file: str) -> int:
    """Runs the trials; exits 0 when at least one completed."""
    plan = SweepPlan.from_json(Path(plan_file).read_text(encoding="utf-8"))
    backend = LocalBackend(os.environ[job_variables.WORKSPACE])
    parent = os.environ[job_variables.RUN_ID]
    base = plan.trial_spec.with_snapshot_at(
        Path(plan_file).absolute().parent / TRIAL_SNAPSHOT_FOLDER
    )
    pending = list(enumerate(plan.trials))
    running: list[RunRef] = []
    finished: list[RunState] = []

    def cancel_trials(signum: int, frame: FrameType | None) -> None:
        for ref in running:
            backend.cancel(ref)
        sys.exit(128 + signum)

    signal.signal(signal.SIGTERM, cancel_trials)
    schedule = PollSchedule(
        timeout_seconds=DEADLINE_SECONDS, first_pause=POLL_SECONDS, max_pause=POLL_SECONDS
    )
    for _ in polls(schedule):
        for ref in list(running):
            state = backend.get_state(ref)
            if state.is_terminal:
                running.remove(ref)
                finished.append(state)
                print(f"trial {ref.run_id} ended {state.status}", flush=True)
        while pending and len(running) < plan.max_concurrent_runs:
            index, trial_values = pending.pop(0)
            arguments = [str(item) for pair in trial_values.items() for item in pair]
            trial = dataclasses.replace(
                base,
                args=(*base.args, *arguments),
                display_name=f"trial {index}: {' '.join(arguments)}",
            )
            running.append(backend.submit(trial, parent_run_id=parent))
            print(f"trial {index} started: {' '.join(arguments)}", flush=True)
        if not (pending or running):
            break
    else:
        for ref in running:
            backend.cancel(ref)
        print(
            f"the sweep did not end within {DEADLINE_SECONDS:g} s: its {len(running)} running "
            f"trials were canceled and {len(pending)} were never started",
            flush=True,
        )
        return 1
    completed = [state.ref for state in finished if state.succeeded]
    values = [
        metric.value
        for ref in completed
        for metric in backend.get_metrics(ref)
        if metric.name == plan.primary_metric
        and not isinstance(metric.value, str)
        # A diverged trial's NaN is no score: min() and max() would keep one that came first.
        and not math.isnan(metric.value)
    ]
    if values:
        best = max(values) if plan.goal == "maximize" else min(values)
        log_metrics({f"best_{plan.primary_metric}": best})
        print(f"best {plan.primary_metric}: {best}", flush=True)
    print(f"{len(completed)} of {len(finished)} trials completed", flush=True)
    return 0 if completed else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
