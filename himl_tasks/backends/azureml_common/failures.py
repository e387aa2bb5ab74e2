"""Why an AzureML run failed, read from the error in its run details.

SDK v1's `Run.get_details()` and a v2 job's run details hold the error in the same shape,
`{"error": {"code", "message", "details", ...}}`, and the failure kinds are read from it by
the same rules.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from himl_tasks.runs import FailureKind, RunStatus

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


def _detail_text(detail: Any) -> str:
    if isinstance(detail, Mapping):
        return " ".join(str(detail.get(k, "")) for k in ("code", "message") if detail.get(k))
    return json.dumps(detail) if not isinstance(detail, str) else detail
