"""Whether the flow run a task runs in is being canceled: what a task watching a run asks.

A task that waits for a job or a pipeline asks at its watch loop's looks, at most every
`CANCEL_CHECK_SECONDS` (each question is a call to the Prefect API), and cancels what it
watches once the answer is yes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from uuid import UUID

CANCEL_CHECK_SECONDS = 2.0


def flow_run_is_canceling() -> bool:
    """True while the current flow run is being canceled, or once it was (False outside one)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.objects import StateType
    from prefect.runtime import flow_run

    if not flow_run.id:
        return False
    with get_client(sync_client=True) as client:
        state = client.read_flow_run(UUID(str(flow_run.id))).state
    return state is not None and state.type in (StateType.CANCELLING, StateType.CANCELLED)


def every(seconds: float, check: Callable[[], bool]) -> Callable[[], bool]:
    """Calls `check` at most once per `seconds`; in between, says False."""
    last = float("-inf")

    def throttled() -> bool:
        nonlocal last
        if time.monotonic() - last < seconds:
            return False
        last = time.monotonic()
        return check()

    return throttled
