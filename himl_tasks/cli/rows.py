"""A listed run as a row: the fields `himl status` prints, as text and as JSON."""

from __future__ import annotations

import datetime
from typing import Any

from himl_tasks.runs import ListedRun

COLUMNS = (
    "experiment",
    "run_id",
    "display_name",
    "status",
    "failure_kind",
    "attempt",
    "started",
    "duration",
    "portal_url",
)


def status_row(run: ListedRun, now: datetime.datetime | None = None) -> dict[str, Any]:
    """The run's row: strings for people, keyed by `COLUMNS` (plus `recovery_id`, `tags`)."""
    state = run.state
    return {
        "experiment": state.ref.experiment,
        "run_id": state.ref.run_id,
        "recovery_id": state.ref.recovery_id,
        "display_name": run.display_name,
        "status": state.status.value,
        "failure_kind": state.failure_kind.value if state.failure_kind else "",
        "attempt": state.attempt,
        "started": _when(state.started_at),
        "duration": _duration(state.started_at, state.ended_at, now),
        "portal_url": state.portal_url,
        "tags": dict(run.tags),
        "parent_run_id": run.parent_run_id,
    }


def _when(moment: datetime.datetime | None) -> str:
    if moment is None:
        return ""
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _duration(
    started: datetime.datetime | None,
    ended: datetime.datetime | None,
    now: datetime.datetime | None,
) -> str:
    if started is None:
        return ""
    end = ended or now or datetime.datetime.now(datetime.UTC)
    seconds = max(0, int((end - started).total_seconds()))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}"
