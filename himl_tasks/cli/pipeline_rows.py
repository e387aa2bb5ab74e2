"""The pipeline runs among the runs a command names, and their steps as rows.

A pipeline run is a run whose steps are its child runs (`Backend.pipeline_steps`). Which runs
are pipeline runs is asked of the backend, never guessed from a tag; for a listing, only runs
with children are asked (a pipeline run with none has no step to show yet).
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from typing import Any

from himl_tasks.backends.base import Backend
from himl_tasks.cli.rows import status_row
from himl_tasks.errors import InvalidInputError, NotSupportedError
from himl_tasks.pipeline_runs import StepRun
from himl_tasks.runs import ListedRun, RunRef


def pipeline_steps_or_none(backend: Backend, ref: RunRef) -> list[StepRun] | None:
    """The run's steps if it is a pipeline run; None for any other run."""
    try:
        return backend.pipeline_steps(ref)
    except (InvalidInputError, NotSupportedError):  # not a pipeline run, or no pipelines here
        return None


def pipelines_among(
    backend: Backend, runs: Sequence[ListedRun], listed: Sequence[ListedRun]
) -> dict[str, list[StepRun]]:
    """The steps of each pipeline run among `runs`, by run id (asked of runs with children)."""
    parents = {run.parent_run_id for run in listed if run.parent_run_id is not None}
    found = {}
    for run in runs:
        if run.ref.run_id in parents:
            steps = pipeline_steps_or_none(backend, run.ref)
            if steps is not None:
                found[run.ref.run_id] = steps
    return found


def step_row(
    backend: Backend,
    step: StepRun,
    listed: Mapping[str, ListedRun],
    now: datetime.datetime | None = None,
) -> dict[str, Any]:
    """A step of a pipeline run as a row: its name, run, status, and the run it reused.

    Args:
        backend: Where the run is, asked for the step run's state when `listed` lacks it.
        step: The step.
        listed: The workspace's runs as listed, by run id.
        now: The time durations of running runs end at (default: now).
    """
    reused_from = step.reused_from.recovery_id if step.reused_from is not None else None
    if step.run is None:
        return {
            "step": step.step,
            "run_id": None,
            "recovery_id": None,
            "status": "NotStarted",
            "failure_kind": "",
            "reused_from": reused_from,
        }
    run = listed.get(step.run.run_id) or ListedRun(backend.get_state(step.run))
    return {"step": step.step, **status_row(run, now), "reused_from": reused_from}
