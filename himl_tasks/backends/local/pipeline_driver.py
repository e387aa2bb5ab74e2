"""The run of a local pipeline: starts each step as a child run once its upstream steps completed.

Started by `LocalBackend.submit_pipeline` as the job of the pipeline run, with the pipeline's
plan (`pipeline.json`, a `PipelinePlan`) and each step's snapshot in its snapshot. A step's
input that an upstream step writes is pinned to the exact version that step registered, never
"the latest". Once a step fails (or is canceled) no further step starts, as AzureML's
pipelines do by default: its dependants are never started (they have no run), the steps
already running go on to their end, and the pipeline fails. Canceling the pipeline cancels its
running steps. A step that allows reuse may not run at all: `LocalBackend.submit_step` records
an earlier run of the same step standing in (see `step_reuse`), and its dependants read that
run's versions. It waits in the one polling loop (`watching.polls`), against the same deadline as
a backend's `wait` (`DEADLINE_SECONDS`): steps still running then are canceled and it fails.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import sys
from pathlib import Path
from types import FrameType

from himl_tasks import job_variables
from himl_tasks.backends.local.backend import REUSED_FROM_TAG, LocalBackend
from himl_tasks.backends.local.pipeline_plan import (
    STEP_SNAPSHOTS_FOLDER,
    PipelinePlan,
    PlannedStep,
)
from himl_tasks.backends.watching import DEFAULT_TIMEOUT_SECONDS, PollSchedule, polls
from himl_tasks.datasets import ResolvedDataset
from himl_tasks.errors import HimlError
from himl_tasks.job_spec import JobSpec
from himl_tasks.runs import RunRef

POLL_SECONDS = 0.2
DEADLINE_SECONDS = DEFAULT_TIMEOUT_SECONDS


def main(plan_file: str) -> int:
    """Runs the steps; exits 0 when every step completed."""
    plan = PipelinePlan.from_json(Path(plan_file).read_text(encoding="utf-8"))
    snapshots = Path(plan_file).absolute().parent / STEP_SNAPSHOTS_FOLDER
    backend = LocalBackend(os.environ[job_variables.WORKSPACE])
    pipeline = os.environ[job_variables.RUN_ID]
    pending = list(plan.steps)
    running: dict[str, RunRef] = {}
    completed: dict[str, list[ResolvedDataset]] = {}
    stopped: list[str] = []

    def cancel_steps(signum: int, frame: FrameType | None) -> None:
        for ref in running.values():
            backend.cancel(ref)
        sys.exit(128 + signum)

    signal.signal(signal.SIGTERM, cancel_steps)
    schedule = PollSchedule(
        timeout_seconds=DEADLINE_SECONDS, first_pause=POLL_SECONDS, max_pause=POLL_SECONDS
    )
    for _ in polls(schedule):
        for name, ref in list(running.items()):
            state = backend.get_state(ref)
            if state.is_terminal:
                del running[name]
                print(f"step {name} ({ref.run_id}) ended {state.status}", flush=True)
                if state.succeeded:
                    completed[name] = backend.run_outputs(ref)
                else:
                    stopped.append(name)
        for step in list(pending) if not stopped else []:
            if not all(upstream in completed for upstream in step.upstream):
                continue
            pending.remove(step)
            spec = _step_job(step, snapshots, completed)
            try:
                running[step.name] = backend.submit_step(step, spec, pipeline_run_id=pipeline)
            except HimlError as error:
                print(f"step {step.name} could not be submitted: {error}", flush=True)
                stopped.append(step.name)
                break
            reused = backend.run_tags(running[step.name]).get(REUSED_FROM_TAG)
            started = f"reused run {reused}" if reused else "started"
            print(f"step {step.name} {started}: {running[step.name].run_id}", flush=True)
        if not running and (stopped or not pending):
            break
    else:
        for ref in running.values():
            backend.cancel(ref)
        print(
            f"the pipeline did not end within {DEADLINE_SECONDS:g} s: its running steps "
            f"{', '.join(running)} were canceled",
            flush=True,
        )
        return 1
    if stopped:
        never = ", ".join(step.name for step in pending) or "none"
        print(
            f"the pipeline failed: step {', '.join(stopped)} did not complete; steps never "
            f"started: {never}",
            flush=True,
        )
        return 1
    print(f"the pipeline completed: {len(completed)} steps", flush=True)
    return 0


def _step_job(
    step: PlannedStep, snapshots: Path, completed: dict[str, list[ResolvedDataset]]
) -> JobSpec:
    """The step's job: run from its snapshot's copy, reading its upstream steps' versions."""
    written = {
        output.name: output.version for upstream in step.upstream for output in completed[upstream]
    }
    spec = step.spec.with_snapshot_at(snapshots / step.snapshot_folder)
    return dataclasses.replace(
        spec,
        input_datasets=tuple(
            dataclasses.replace(config, version=written[config.name])
            if config.name in written
            else config
            for config in spec.input_datasets
        ),
    )


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
