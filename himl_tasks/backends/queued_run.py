"""What hi-ml does once it has queued a run: it says so, and it waits for the run's end.

`submit_to_azure_if_needed` (on any backend) and AzureML v1's `submit_run` both print hi-ml's
banner and wait the same way, through these two functions: one banner, one wait for a run and
its children.
"""

from __future__ import annotations

import functools
import sys
import time
from typing import TYPE_CHECKING

from himl_tasks.errors import JobFailedError
from himl_tasks.runs import RUN_RECOVERY_FILE, RunRef, RunState

if TYPE_CHECKING:
    from himl_tasks.backends.base import Backend

BANNER_RULE = "=" * 78
LAST_LOOK_SECONDS = 0.05
"""How long a child run is still looked at once the wait's deadline has passed."""


def announce_queued_run(backend: Backend, ref: RunRef) -> None:
    """Prints hi-ml's banner: the run's id, experiment, recovery id and link.

    `print`, not logging, as hi-ml: the person who started the script reads it.
    """
    print(f"\n{BANNER_RULE}")
    print(f"Successfully queued run {ref.run_id} in experiment {ref.experiment} ({backend!r})")
    print(f"Experiment name and run ID are available in file {RUN_RECOVERY_FILE}")
    print(f"Run recovery id: {ref.recovery_id}")
    if ref.portal_url:
        print(f"Run URL: {ref.portal_url}")
    print(f"{BANNER_RULE}\n", flush=True)


def wait_for_run_and_children(
    backend: Backend, ref: RunRef, *, show_output: bool, timeout_seconds: float | None
) -> RunState:
    """Waits for the run, then its children; raises unless every one of them completed.

    hi-ml waits for the run and then checks its children (a sweep's trials): a sweep whose
    trial failed has not succeeded. Each child is watched rather than read once, so that a
    trial's state is never read before it settled. One deadline covers the run and its
    children together.

    Args:
        backend: The run's backend.
        ref: The run.
        show_output: Print the run's log lines while waiting.
        timeout_seconds: How long to wait for the run and its children, together (default:
            the backend's).

    Returns:
        The run's final state.

    Raises:
        JobFailedError: If the run or one of its children did not complete.
        JobTimeoutError: If a wait reached its deadline.
        KeyboardInterrupt: Ctrl-C while waiting, once it is said that the run goes on.
    """
    print(f"Waiting for the completion of run {ref.run_id}.", flush=True)
    on_line = functools.partial(print, flush=True) if show_output else None
    seconds = backend.default_timeout_seconds if timeout_seconds is None else timeout_seconds
    deadline = time.monotonic() + seconds
    try:
        state = backend.watch(ref, timeout_seconds=seconds, on_line=on_line)
        _raise_unless_completed(state)
        for child in backend.child_runs(ref):
            left = max(deadline - time.monotonic(), LAST_LOOK_SECONDS)
            _raise_unless_completed(backend.watch(child, timeout_seconds=left))
    except KeyboardInterrupt:
        # Only the wait stops, the run does not: say so, and how to find it again, as
        # azureml's Run.wait_for_completion does (azureml/core/run.py: "But the run is still
        # executing on the compute target").
        print(_interrupted_wait(ref), file=sys.stderr, flush=True)
        raise
    print(f"Run {ref.run_id} completed.", flush=True)
    return state


def _interrupted_wait(ref: RunRef) -> str:
    return (
        f"\nStopped waiting for run {ref.run_id}: the run itself goes on. Its recovery id "
        f"{ref.recovery_id} is in {RUN_RECOVERY_FILE}; fetch_run(workspace, "
        f"'{ref.recovery_id}') finds it again, and the run's cancel() stops it."
    )


def _raise_unless_completed(state: RunState) -> None:
    if not state.succeeded:
        raise JobFailedError(state)
