"""Waiting for runs and following their logs, built once for every backend."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from himl_tasks.runs import RunRef, RunState


def wait_until_terminal(
    get_state: Callable[[RunRef], RunState], ref: RunRef, *, timeout: float, poll: float
) -> RunState:
    """Polls a run until it ends; returns its final state.

    Raises:
        TimeoutError: If it has not ended after `timeout` seconds.
    """
    deadline = time.monotonic() + timeout
    while True:
        state = get_state(ref)
        if state.is_terminal:
            return state
        if time.monotonic() >= deadline:
            raise TimeoutError(f"run {ref} is still {state.status} after {timeout:g} s")
        time.sleep(poll)


def follow_lines(
    read_new: Callable[[], bytes], has_ended: Callable[[], bool], *, poll: float
) -> Iterator[str]:
    """Yields the lines of a growing log until `has_ended()` (checked before each read).

    Args:
        read_new: Returns the bytes appended to the log since its last call.
        has_ended: True once nothing more will be appended.
        poll: Seconds between reads.
    """
    pending = b""
    while True:
        ended = has_ended()
        pending += read_new()
        *lines, pending = pending.split(b"\n")
        for line in lines:
            yield line.decode("utf-8", errors="replace")
        if ended:
            if pending:
                yield pending.decode("utf-8", errors="replace")
            return
        time.sleep(poll)
