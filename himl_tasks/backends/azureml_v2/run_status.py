"""Reading a v2 job's run details: its status, why it failed, its times, the outputs it made.

The statuses are the service's `JobStatus` (azure/ai/ml/_restclient/arm_ml_service/models/
_enums.py: the 13 the SDK documents in `Job.status`, azure/ai/ml/entities/_job/job.py, plus
`Unknown`, which only the REST enum has). A v2 job's error is not on the `Job` entity but in
its run details (`RunDetails.error`, azure/ai/ml/_restclient/runhistory/models/_models.py):
`{"error": {"code", "message", "details", ...}}`, the same shape as SDK v1's, and the failure
kinds are read from it by the same rules (`classify_failure`): preemption (AzureML ends a
preempted job Failed with a "PreemptionError: Nodes of this job got pre-empted" inside a
UserError), an exceeded run duration, refused credentials, the service's own failures
(SystemError, ServiceError, node failures), else the user's error.

A job that runs past its `limits.timeout` is not failed but canceled ("the max run duration
..., after which the job will be cancelled": `CommandJobLimits.timeout`, the REST API's and
azure/ai/ml/entities/_job/job_limits.py's docstring). A canceled job whose time from start
to end reached its timeout is taken as timed out; a person's cancel at that very moment
would be too.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

from himl_tasks.backends.azureml_common.failures import classify_failure, error_text
from himl_tasks.backends.azureml_common.times import parse_time
from himl_tasks.runs import CONFIGURATION_HINT, FailureKind, RunRef, RunState, RunStatus

logger = logging.getLogger(__name__)

# Every value of the REST `JobStatus` enum, in its order, mapped by value (never `str(enum)`,
# which is the member's name on Python 3.11).
V2_STATUSES: dict[str, RunStatus] = {
    "NotStarted": RunStatus.NOT_STARTED,  # the client's state before submission
    "Starting": RunStatus.PREPARING,  # accepted; the job has its name
    "Provisioning": RunStatus.PREPARING,  # on-demand (serverless) compute being made
    "Preparing": RunStatus.PREPARING,  # the image being built
    "Queued": RunStatus.QUEUED,  # waiting for the cluster's nodes
    "Running": RunStatus.RUNNING,
    "Finalizing": RunStatus.FINALIZING,  # the user's code ended; outputs being uploaded
    "CancelRequested": RunStatus.CANCEL_REQUESTED,
    "Completed": RunStatus.COMPLETED,
    "Failed": RunStatus.FAILED,
    "Canceled": RunStatus.CANCELED,
    "NotResponding": RunStatus.NOT_RESPONDING,  # no heartbeat: terminal, the platform's fault
    "Paused": RunStatus.QUEUED,  # held by the service; it may go on
    "Unknown": RunStatus.QUEUED,  # the service cannot say now; asked again at the next poll
}

TIMEOUT_TOLERANCE_SECONDS = 1.0
"""How much earlier than its timeout a canceled job may have ended and still count as timed out
(the service's times and its timer are not to the millisecond)."""

# A data asset version as a job's run details name it ("azureml://locations/<region>/
# workspaces/<id>/data/<name>/versions/<version>", or the ARM id ".../data/<name>/versions/<v>").
_ASSET_VERSION = re.compile(r"/data/(?P<name>[^/]+)/versions/(?P<version>[^/]+)$")


def v2_run_status(status: Any) -> RunStatus:
    """Maps a v2 job status (text, or the SDK's enum: its value is read).

    One this code does not know yet counts as Queued (not terminal), with a warning.
    """
    value = str(getattr(status, "value", status) or "")
    found = V2_STATUSES.get(value)
    if found is None:
        logger.warning("unknown AzureML v2 job status %r: treated as Queued", value)
        return RunStatus.QUEUED
    return found


def state_from_run_details(
    ref: RunRef,
    details: Mapping[str, Any],
    portal_url: str,
    *,
    timeout_seconds: float | None = None,
) -> RunState:
    """A `RunState` from a job's run details (the REST shape: camelCase keys).

    Args:
        ref: The job's run.
        details: Its run details.
        portal_url: Where a person looks at it.
        timeout_seconds: The job's `limits.timeout`, to tell a timeout from a cancel.
    """
    status = v2_run_status(details.get("status"))
    error = error_text(details)
    kind = classify_failure(status, error)
    started = parse_time(details.get("startTimeUtc"))
    ended = parse_time(details.get("endTimeUtc"))
    if kind is FailureKind.CANCELED and timeout_seconds and started and ended:
        ran = (ended - started).total_seconds()
        if ran >= timeout_seconds - TIMEOUT_TOLERANCE_SECONDS:
            kind = FailureKind.TIMEOUT
            error = (
                f"the job ran {ran:.0f} s, up to its timeout of {timeout_seconds:g} s "
                "(limits.timeout, the job's max_run_duration), and AzureML canceled it"
            )
    if kind is FailureKind.CONFIGURATION:
        error = f"{error} {CONFIGURATION_HINT}"
    if status is RunStatus.FAILED and not error:
        error = "the job failed and AzureML gave no error; see its user_logs/std_log.txt"
    return RunState(
        ref=ref,
        status=status,
        failure_kind=kind,
        error=error,
        attempt=1,
        created_at=parse_time(details.get("createdTimeUtc")),
        started_at=started,
        ended_at=ended,
        portal_url=portal_url,
    )


def registered_outputs(details: Mapping[str, Any]) -> dict[str, tuple[str, int]]:
    """The data asset version each output of a job was registered as: {output: (name, v)}.

    Read from the run details' `outputs` (`TypedAssetReference`s: `assetId`, `type`); an
    output not registered as a named data asset version is left out.
    """
    return _asset_versions(details.get("outputs"))


def registered_inputs(details: Mapping[str, Any]) -> dict[str, tuple[str, int]]:
    """The data asset version each input of a job read: {input: (name, v)}.

    Read from the run details' `inputs` (`TypedAssetReference`s, as `outputs`: `RunDetails.
    inputs`, azure/ai/ml/_restclient/runhistory/models/_models.py); an input that is not a
    data asset version (a plain folder, a placeholder) is left out.
    """
    return _asset_versions(details.get("inputs"))


def _asset_versions(references: Any) -> dict[str, tuple[str, int]]:
    found: dict[str, tuple[str, int]] = {}
    for key, reference in (references or {}).items():
        asset_id = str((reference or {}).get("assetId") or "")
        match = _ASSET_VERSION.search(asset_id)
        if match and match["version"].isdigit():
            found[str(key)] = (match["name"], int(match["version"]))
    return found
