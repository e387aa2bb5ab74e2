"""Reading a versioned plan written as JSON: one way for a launch plan and a sweep plan.

A plan written by another version of himl-tasks, or damaged on disk, is refused with one
`ConfigurationError` that says what to do; it never becomes a `KeyError` deep in a supervisor.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

from himl_tasks.errors import ConfigurationError

Plan = TypeVar("Plan")


def read_versioned_plan(
    text: str, *, what: str, version: int, remedy: str, build: Callable[[dict[str, Any]], Plan]
) -> Plan:
    """The plan in `text`, built from its fields once its format version is the one read here.

    Args:
        text: The JSON a plan's `to_json` wrote.
        what: What the plan is, for messages ("a local run's launch plan").
        version: The format version this himl-tasks reads.
        remedy: What to do about a plan that cannot be read ("submit the job again").
        build: Makes the plan of its JSON fields; raises KeyError, TypeError, ValueError or
            AttributeError for a field that is missing or of the wrong type.

    Raises:
        ConfigurationError: The text is not JSON, is of another format version, or lacks or
            mistypes a field.
    """
    try:
        fields = json.loads(text)
    except ValueError as error:
        raise ConfigurationError(f"{what} is not JSON: {error}; {remedy}") from None
    found = fields.get("version") if isinstance(fields, dict) else None
    if found != version:
        raise ConfigurationError(
            f"{what} has format version {found!r}, and this himl-tasks reads version {version} "
            f"only: it was written by another version of himl-tasks; run that version, or "
            f"{remedy}"
        )
    try:
        return build(fields)
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise ConfigurationError(
            f"{what} of version {version} lacks or mistypes a field "
            f"({type(error).__name__}: {error}): it is damaged; {remedy}"
        ) from None
