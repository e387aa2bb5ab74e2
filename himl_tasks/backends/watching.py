"""Waiting for runs and following their logs, built once for every backend."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

from himl_tasks.errors import JobTimeoutError
from himl_tasks.runs import RunRef, RunState


def wait_until_terminal(
    get_state: Callable[[RunRef], RunState], ref: RunRef, *, timeout: float, poll: float
) -> RunState:
    """Polls a run until it ends; returns its final state.

    Raises:
        JobTimeoutError: If it has not ended after `timeout` seconds (a TimeoutError).
    """
    deadline = time.monotonic() + timeout
    while True:
        state = get_state(ref)
        if state.is_terminal:
            return state
        if time.monotonic() >= deadline:
            raise JobTimeoutError(f"run {ref} is still {state.status} after {timeout:g} s")
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
    lines = LineBuffer()
    while True:
        ended = has_ended()
        yield from lines.feed(read_new())
        if ended:
            yield from lines.flush()
            return
        time.sleep(poll)


class LineBuffer:
    """Turns chunks of a log into whole lines, keeping an unfinished last line for later."""

    def __init__(self) -> None:
        self._pending = b""

    def feed(self, chunk: bytes) -> list[str]:
        """The lines that `chunk` completes."""
        *complete, self._pending = (self._pending + chunk).split(b"\n")
        return [line.decode("utf-8", errors="replace") for line in complete]

    def flush(self) -> list[str]:
        """The unfinished last line, once the log will not grow any more."""
        rest, self._pending = self._pending, b""
        return [rest.decode("utf-8", errors="replace")] if rest else []


def tail_reader(path: Path) -> Callable[[], bytes]:
    """A function returning the bytes appended to a file since its last call.

    It returns nothing while the file does not exist.
    """
    position = 0

    def read_new() -> bytes:
        nonlocal position
        if not path.exists():
            return b""
        with path.open("rb") as log:
            log.seek(position)
            chunk = log.read()
        position += len(chunk)
        return chunk

    return read_new
