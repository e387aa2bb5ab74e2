"""Reading an AzureML run's details: its status, why it failed, its times and metrics."""

from __future__ import annotations

import datetime
import json
import logging
import re
from collections.abc import Mapping
from typing import Any

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

_PREEMPTED = re.compile(r"preemption|pre-?empted", re.IGNORECASE)
_TIMED_OUT = re.compile(
    r"max(imum)?[ _]run[ _]duration|exceeded the (maximum|max) (allowed )?(run ?time|duration)",
    re.IGNORECASE,
)
# Credentials refused or lacking a permission. AzureML's data runtime reports them with
# hierarchical codes ending in ".Authentication" (ScriptExecution.StreamAccess.Authentication,
# ...WriteStreams..., ...DatabaseConnection...: "Troubleshoot data access errors", Azure
# Machine Learning docs); Azure Storage's own 401/403 codes appear when the job or a data
# mount quotes the storage error ("Common REST API error codes", "SAS error codes").
_CONFIGURATION = re.compile(
    r"\b(ScriptExecution\.\w+\.Authentication|AuthenticationFailed|"
    r"InvalidAuthenticationInfo|NoAuthenticationInformation|KeyBasedAuthenticationNotPermitted|"
    r"Authorization(Failure|PermissionMismatch|ResourceTypeMismatch|ServiceMismatch|"
    r"ProtocolMismatch|SourceIPMismatch))\b"
)
_INFRASTRUCTURE = re.compile(
    r"\b(SystemError|ServiceError|InternalServerError|ServiceUnavailable|"
    r"node(s)? (became |is |are )?unusable|node failure|disk ?full|"
    r"ImagePullTimeout|AllocationFailed|ResourcesUnavailable)\b",
    re.IGNORECASE,
)


def to_run_status(azureml_status: str) -> RunStatus:
    """Maps an AzureML status; one this code does not know yet counts as Queued (logged)."""
    status = AZUREML_STATUSES.get(azureml_status)
    if status is None:
        logger.warning("unknown AzureML run status %r: treated as Queued", azureml_status)
        return RunStatus.QUEUED
    return status


def error_text(details: Mapping[str, Any]) -> str:
    """The error a run's details hold, as one line of text ('' when there is none)."""
    error = details.get("error")
    if not error:
        return ""
    inner = error.get("error", error) if isinstance(error, Mapping) else error
    if isinstance(inner, Mapping):
        parts = [str(inner.get("code", "")), str(inner.get("message", ""))]
        parts += [_detail_text(d) for d in inner.get("details") or []]
        return ": ".join(p for p in parts if p)
    return str(inner)


def classify_failure(status: RunStatus, error: str) -> FailureKind | None:
    """Why a terminal run did not complete, from its status and error text.

    Preemption is recognised first (AzureML reports it as a UserError whose text names
    PreemptionError), then an exceeded run duration, then refused credentials and missing
    permissions (`configuration`: never retried, whatever the error's top-level code says),
    then service and node failures; any other failure is the job's own (`user_error`).
    """
    if status is RunStatus.CANCELED:
        return FailureKind.CANCELED
    if status is RunStatus.NOT_RESPONDING:
        return FailureKind.INFRASTRUCTURE
    if status is not RunStatus.FAILED:
        return None
    if _PREEMPTED.search(error):
        return FailureKind.PREEMPTED
    if _TIMED_OUT.search(error):
        return FailureKind.TIMEOUT
    if _CONFIGURATION.search(error):
        return FailureKind.CONFIGURATION
    if _INFRASTRUCTURE.search(error):
        return FailureKind.INFRASTRUCTURE
    return FailureKind.USER_ERROR


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


def parse_time(text: Any) -> datetime.datetime | None:
    """Parses AzureML's ISO times ('2026-11-21T10:00:00.123456Z'); None when absent."""
    if not text:
        return None
    cleaned = str(text).replace("Z", "+00:00")
    cleaned = re.sub(r"(\.\d{6})\d+", r"\1", cleaned)
    return datetime.datetime.fromisoformat(cleaned)


def _detail_text(detail: Any) -> str:
    if isinstance(detail, Mapping):
        return " ".join(str(detail.get(k, "")) for k in ("code", "message") if detail.get(k))
    return json.dumps(detail) if not isinstance(detail, str) else detail
