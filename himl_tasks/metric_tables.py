"""How a logged row or table becomes metric series: one rule for writing and reading back.

AzureML keeps a table (`Run.log_table`, `Run.log_row`) as columns of values. A table of just a
`value` column, or of `step` and `value` (what `log_metrics` writes on AzureML), is one series
under the table's name; any other table is one series per column, `<table>/<column>`, with the
row number as its step (hi-ml's hyperparameter table becomes `hyperparams/name` and
`hyperparams/value`). The local backend writes tables by this rule and the AzureML backend reads
them back by it, so both return the same metrics for the same calls.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping, Sequence
from typing import Any

from himl_tasks.errors import InvalidInputError

_SERIES_COLUMNS = ({"value"}, {"step", "value"})


def table_series(
    name: str, columns: Mapping[str, Sequence[Any] | Any], first_row: int = 0
) -> list[tuple[str, float | str, int | None]]:
    """The (metric name, value, step) of each cell of a table, by the module's rule.

    Args:
        name: The table's name.
        columns: Its values, column by column (a value alone is a column of one row).
        first_row: The step of the first row, when rows were logged before (`log_row`).

    Raises:
        InvalidInputError: If a `step` column holds something else than whole numbers.
    """
    # AzureML returns a table of one row as {column: value} (azureml-core 1.61,
    # get_cells_from_metric_v2_dto), not {column: [value]}.
    columns = {
        column: values if isinstance(values, list | tuple) else [values]
        for column, values in columns.items()
    }
    if set(columns) in _SERIES_COLUMNS:
        values = list(columns["value"])
        steps = list(columns.get("step") or range(first_row, first_row + len(values)))
        return [
            (name, metric_value(v), whole_step(s, f"table {name!r}'s step column"))
            for s, v in zip(steps, values, strict=False)
        ]
    return [
        (f"{name}/{column}", metric_value(value), first_row + row)
        for column, values in columns.items()
        for row, value in enumerate(values)
    ]


def metric_value(value: Any) -> float | str:
    """A logged value as a metric keeps it: a number as a float, anything else as its text.

    A number is anything that converts itself to a float (numpy's and torch's scalars too)
    except a bool and a string: "0.1" logged as text stays the text "0.1". A whole number too
    big for a float is kept as its text.
    """
    if isinstance(value, str | bool) or not hasattr(value, "__float__"):
        return str(value)
    try:
        return float(value)
    except OverflowError:  # a whole number too big for a float: its digits, not inf
        return str(value)


def whole_step(step: Any, where: str) -> int | None:
    """A step as an int (numpy's and torch's whole numbers too), or None.

    Raises:
        InvalidInputError: For a step that is not a whole number: the local registry would
            keep "x" or 1.5 as a step, and a bool is no step.
    """
    if step is None:
        return None
    if not isinstance(step, bool):
        try:
            return operator.index(step)
        except TypeError:
            pass
    raise InvalidInputError(
        f"{where}: a step is a whole number (an epoch, an iteration), or None; not {step!r}"
    )
