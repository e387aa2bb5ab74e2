"""The one polling loop: its checks of timeouts and pauses, and that it always ends."""

from __future__ import annotations

import time

import pytest

from himl_tasks.backends.watching import PollSchedule, polls
from himl_tasks.errors import InvalidInputError


@pytest.mark.parametrize("field", ["timeout_seconds", "first_pause", "max_pause"])
def test_a_whole_number_too_big_for_a_float_is_refused_as_invalid_input(field: str) -> None:
    with pytest.raises(InvalidInputError, match=field):
        PollSchedule(**{field: 10**400})  # type: ignore[arg-type]


def test_huge_timeouts_and_pauses_look_again_without_overflowing_the_clock(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    slept: list[float] = []
    monkeypatch.setattr(time, "sleep", slept.append)
    looks = polls(PollSchedule(timeout_seconds=1e300, first_pause=1e300, max_pause=1e300))

    assert [next(looks) for _ in range(3)] == [0, 1, 2]
    assert slept and max(slept) <= 86400.0  # time.sleep(1e300) raises OverflowError
