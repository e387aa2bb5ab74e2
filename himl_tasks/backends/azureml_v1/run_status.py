"""Reading an AzureML run's details: its status, why it failed, its times and metrics."""

from __future__ import annotations

import datetime
import logging
from collections.abc import Mapping
from typing import Any

from himl_tasks.backends.azureml_common.failures import classify_failure, error_text
from himl_tasks.backends.azureml_common.times import parse_time
from himl_tasks.metric_tables import metric_value, table_series
from himl_tasks.runs import (
    CONFIGURATION_HINT,
    FailureKind,
    Metric,
    RunRef,
    RunState,
    RunStatus,
)

logger = logging.getLogger(__name__)

# Every status azureml-core knows (azureml._restclient.constants.RunStatus), mapped.
AZUREML_STATUSES: dict[str, RunStatus] = {
    "NotStarted": RunStatus.NOT_STARTED,
    "Unapproved": RunStatus.NOT_STARTED,
    "Queued": RunStatus.QUEUED,
    "Paused": RunStatus.QUEUED,
    "Pausing": RunStatus.QUEUED,
    "Preparing": RunStatus.PREPARING,
    "Provisioning": RunStatus.PREPARING,
    "Starting": RunStatus.PREPARING,
    "Running": RunStatus.RUNNING,
    "Finalizing": RunStatus.FINALIZING,
    "CancelRequested": RunStatus.CANCEL_REQUESTED,
    "Completed": RunStatus.COMPLETED,
    "Failed": RunStatus.FAILED,
    "Canceled": RunStatus.CANCELED,
    "NotResponding": RunStatus.NOT_RESPONDING,
}


def to_run_status(azureml_status: str) -> RunStatus:
    """Maps an AzureML status; one this code does not know yet counts as Queued (logged)."""
    status = AZUREML_STATUSES.get(azureml_status)
    if status is None:
        logger.warning("unknown AzureML run status %r: treated as Queued", azureml_status)
        return RunStatus.QUEUED
    return status


def state_from_details(ref: RunRef, details: Mapping[str, Any], portal_url: str) -> RunState:
    """A `RunState` from `Run.get_details()`."""
    status = to_run_status(str(details.get("status", "")))
    error = error_text(details)
    kind = classify_failure(status, error)
    if kind is FailureKind.CONFIGURATION:
        error = f"{error} {CONFIGURATION_HINT}"
    return RunState(
        ref=ref,
        status=status,
        failure_kind=kind,
        error=error,
        attempt=1,
        created_at=parse_time(details.get("createdTimeUtc") or details.get("submittedTimeUtc")),
        started_at=parse_time(details.get("startTimeUtc")),
        ended_at=parse_time(details.get("endTimeUtc")),
        portal_url=portal_url,
    )


def metrics_from_run(values: Mapping[str, Any], logged_at: datetime.datetime) -> list[Metric]:
    """Metrics from `Run.get_metrics()`.

    Each is a scalar, a list (step = index), or a table, read by `himl_tasks.metric_tables`'
    rule (a `step`/`value` table, what `log_row(name, step=..., value=...)` writes, is one
    series). A value that is not a number (a hyperparameter, a note) is kept as its text.

    AzureML v1 does not return when each value was logged; `logged_at` is used for all.
    """
    found: list[Metric] = []
    for name, value in values.items():
        if isinstance(value, Mapping):
            found += [Metric(series, v, s, logged_at) for series, v, s in table_series(name, value)]
        elif isinstance(value, list):
            found += [Metric(name, metric_value(v), i, logged_at) for i, v in enumerate(value)]
        else:
            found.append(Metric(name, metric_value(value), None, logged_at))
    return found
