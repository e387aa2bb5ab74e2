"""Checks that a value given as a number is one: a bool is not, nor is nan or inf a duration."""

from __future__ import annotations

import math
from typing import TypeGuard


def is_number(value: object) -> TypeGuard[int | float]:
    """Tells whether `value` is an int or a float (a bool, though an int to Python, is not)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def is_whole_number(value: object) -> TypeGuard[int]:
    """Tells whether `value` is an int and not a bool."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_seconds(value: object, *, zero_ok: bool) -> bool:
    """Tells whether `value` is a finite number of seconds: more than 0, or 0 too if `zero_ok`."""
    if not is_number(value):
        return False
    try:
        finite = math.isfinite(value)
    except OverflowError:  # a whole number too big for a float
        return False
    return finite and (value >= 0 if zero_ok else value > 0)
