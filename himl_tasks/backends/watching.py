"""Waiting, built once: the one polling loop, and turning a growing log into lines.

Every wait in the project (a backend's `wait` and `watch`, following a run's log, the local sweep
driver waiting for its trials) is a `for` over `polls(...)`: a first look at once, then looks
after pauses that grow by half up to a ceiling, and an end at a deadline, so no wait is endless
and none sleeps past its deadline.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from himl_tasks.errors import InvalidInputError
from himl_tasks.number_checks import is_seconds

GROWTH = 1.5
DEFAULT_TIMEOUT_SECONDS = 7 * 86400.0
MAX_SLEEP_SECONDS = 86400.0
"""The longest single sleep (time.sleep(1e300) overflows; a look after a day costs nothing)."""
MIN_PAUSE_SECONDS = 0.01
"""The shortest pause between looks: a pause of 0 means this one, never a spinning loop."""


@dataclass(frozen=True)
class PollSchedule:
    """When to look again, and when to stop looking.

    Args:
        timeout_seconds: Stop after this long (the deadline).
        first_pause: The first pause between looks; each next one is half as long again.
        max_pause: The longest pause. No pause is shorter than `MIN_PAUSE_SECONDS`: 0 means
            "as often as sensible", not a loop that spins a core.

    Raises:
        InvalidInputError: For a timeout that is not positive and finite (it would never end,
            or end before looking), or a pause that is negative or not finite.
    """

    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS
    first_pause: float = 0.1
    max_pause: float = 10.0

    def __post_init__(self) -> None:
        if not is_seconds(self.timeout_seconds, zero_ok=False):
            raise InvalidInputError(
                f"timeout_seconds must be a positive, finite number of seconds, not "
                f"{self.timeout_seconds!r}"
            )
        for name in ("first_pause", "max_pause"):
            if not is_seconds(getattr(self, name), zero_ok=True):
                raise InvalidInputError(
                    f"{name} must be a finite number of seconds, 0 or more, not "
                    f"{getattr(self, name)!r}"
                )


def polls(schedule: PollSchedule) -> Iterator[int]:
    """Yields the number of each look: at once, then after each pause, until the deadline.

    The loop over it ends (without an error) once the deadline has passed; the caller says
    what did not happen in time. The last pause is cut short to end at the deadline.
    """
    deadline = time.monotonic() + schedule.timeout_seconds
    pause = schedule.first_pause
    look = 0
    while True:
        yield look
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return
        time.sleep(min(max(pause, MIN_PAUSE_SECONDS), remaining, MAX_SLEEP_SECONDS))
        pause = min(schedule.max_pause, max(pause, 1e-3) * GROWTH)
        look += 1


class LogTail:
    """The whole lines a growing log gained since the last look, read from where it ended.

    Args:
        read: Returns the log's bytes from an offset on (empty while there is no log yet).
    """

    def __init__(self, read: Callable[[int], bytes]) -> None:
        self._read = read
        self._offset = 0
        self._pending = b""

    def new_lines(self, *, final: bool = False) -> list[str]:
        """The lines completed since the last call; with `final`, the unfinished last one too.

        Args:
            final: The log will not grow any more (its run has ended).
        """
        chunk = self._read(self._offset)
        self._offset += len(chunk)
        *complete, self._pending = (self._pending + chunk).split(b"\n")
        if final and self._pending:
            complete.append(self._pending)
            self._pending = b""
        return [line.decode("utf-8", errors="replace") for line in complete]
