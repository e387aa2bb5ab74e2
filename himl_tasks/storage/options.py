"""Checking the numeric options of datastores and transfers when they are given.

A concurrency of 0 would transfer nothing, a negative one or no buffered block would wait forever,
a block size of 0 would divide by zero: such values are refused where they are passed, with an
`InvalidInputError` naming the option and what it accepts.
"""

from __future__ import annotations

import math

from himl_tasks.errors import InvalidInputError


def whole_number(
    option: str, value: object, *, minimum: int = 1, maximum: int | None = None
) -> int:
    """Returns `value` if it is an int in [minimum, maximum]; refuses it otherwise.

    Raises:
        InvalidInputError: Naming the option and the range it accepts.
    """
    in_range = (
        isinstance(value, int)
        and not isinstance(value, bool)
        and value >= minimum
        and (maximum is None or value <= maximum)
    )
    if not in_range:
        bounds = f"at least {minimum}" if maximum is None else f"from {minimum} to {maximum}"
        raise InvalidInputError(f"{option} must be a whole number {bounds}, not {value!r}")
    assert isinstance(value, int)
    return value


MAX_SECONDS = 24 * 3600.0
"""The longest wait an option may ask for: a longer one is a mistake that would look like a hang."""


def flag(option: str, value: object) -> bool:
    """Returns `value` if it is a bool; refuses anything else.

    A truthy stand-in would be taken at its word: `overwrite="False"` would overwrite.

    Raises:
        InvalidInputError: Naming the option.
    """
    if not isinstance(value, bool):
        raise InvalidInputError(f"{option} must be True or False, not {value!r}")
    return value


def seconds(option: str, value: object, *, zero_allowed: bool = True) -> float:
    """Returns `value` as float seconds if finite, >= 0 (or > 0), and at most `MAX_SECONDS`.

    Raises:
        InvalidInputError: Naming the option and what it accepts.
    """
    usable = (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and (value >= 0 if zero_allowed else value > 0)
        and value <= MAX_SECONDS
    )
    if not usable:
        what = "0 or more" if zero_allowed else "more than 0"
        raise InvalidInputError(
            f"{option} must be a number of seconds, {what} and at most {MAX_SECONDS:.0f} "
            f"(a day), not {value!r}"
        )
    assert isinstance(value, (int, float))
    return float(value)
