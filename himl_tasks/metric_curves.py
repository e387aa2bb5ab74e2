"""A metric's history as a picture in text: unicode sparklines and a per-step table.

One renderer for every place people look at a curve without a plotting library: the Prefect wing's
markdown artifacts, the local run page's summary and the `himl metrics` command. It reads the
`Metric`s a backend returns (`Backend.get_metrics`) and keeps numbers only: a text value (hi-ml's
hyperparameter table, a note) has no place on a curve and is skipped.

Example:
    >>> curves = metric_curves(backend.get_metrics(ref))
    >>> print(curves["loss"].summary())
    loss  █▆▄▃▂▁  min 0.1  max 0.9  last 0.1  (6 points)
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping, Sequence

from himl_tasks.runs import Metric

BARS = "▁▂▃▄▅▆▇█"
"""The eight heights of a sparkline, lowest first."""

GAP = " "
"""What a sparkline shows where a value is not a finite number (NaN, infinity)."""

DEFAULT_WIDTH = 40
"""How many characters a sparkline is at most: a longer history is averaged into this many."""

EPOCHS_DONE = "epochs_done"
"""The metric `himl_tasks.runtime.report_progress` logs the number of finished epochs under."""

TOTAL_EPOCHS = "total_epochs"
"""The metric `himl_tasks.runtime.report_progress` logs the number of epochs to train under."""

PROGRESS_METRICS = (EPOCHS_DONE, TOTAL_EPOCHS)
"""Bookkeeping, not curves: the pictures show them as progress."""


@dataclasses.dataclass(frozen=True)
class MetricCurve:
    """One metric's numeric history, ordered by step.

    Attributes:
        name: The metric's name.
        points: (step, value) pairs in step order, one per step (the value logged last wins).
            A value logged without a step gets the next step after the points before it.
    """

    name: str
    points: tuple[tuple[int, float], ...]

    @property
    def values(self) -> list[float]:
        """The values in step order."""
        return [value for _, value in self.points]

    @property
    def finite(self) -> list[float]:
        """The values that are finite numbers (no NaN, no infinity)."""
        return [value for value in self.values if math.isfinite(value)]

    @property
    def minimum(self) -> float | None:
        """The smallest finite value, None if there is none."""
        return min(self.finite, default=None)

    @property
    def maximum(self) -> float | None:
        """The largest finite value, None if there is none."""
        return max(self.finite, default=None)

    @property
    def last(self) -> float | None:
        """The value at the last step (may be NaN), None if there are no points."""
        return self.points[-1][1] if self.points else None

    def sparkline(self, width: int = DEFAULT_WIDTH) -> str:
        """The curve as a sparkline at most `width` characters long (see `sparkline`)."""
        return sparkline(self.values, width=width)

    def summary(self, width: int = DEFAULT_WIDTH, *, name_width: int = 0) -> str:
        """One line: the name (padded to `name_width`), the sparkline, min, max, last, points."""
        count = len(self.points)
        return (
            f"{self.name.ljust(name_width)}  {self.sparkline(width)}"
            f"  min {format_number(self.minimum)}  max {format_number(self.maximum)}"
            f"  last {format_number(self.last)}"
            f"  ({count} point{'' if count == 1 else 's'})"
        )


def format_number(value: float | None) -> str:
    """A value for a table or a summary: four significant digits, `-` when there is none."""
    if value is None:
        return "-"
    if math.isnan(value):
        return "nan"
    return f"{value:.4g}"


def sparkline(values: Sequence[float], *, width: int = DEFAULT_WIDTH) -> str:
    """Values as a unicode sparkline, from `▁` (the smallest) to `█` (the largest).

    A series longer than `width` is cut into `width` consecutive buckets and each bucket shows the
    mean of its finite values. A value (or bucket) without a finite number shows as a space; a flat
    series (all finite values equal) shows at mid height.

    Args:
        values: The values, in step order.
        width: The most characters the line may have (at least 1).

    Raises:
        ValueError: If `width` is less than 1.
    """
    if width < 1:
        raise ValueError(f"a sparkline needs a width of at least 1, got {width}")
    buckets = _downsample(values, width)
    finite = [value for value in buckets if value is not None]
    if not finite:
        return GAP * len(buckets)
    low, high = min(finite), max(finite)
    top = len(BARS) - 1
    line = []
    for value in buckets:
        if value is None:
            line.append(GAP)
        elif high == low:
            line.append(BARS[top // 2])
        else:
            line.append(BARS[round(scaled(value, low, high) * top)])
    return "".join(line)


def _downsample(values: Sequence[float], width: int) -> list[float | None]:
    """`width` bucket means of the finite values (None for a bucket without one)."""
    count = len(values)
    if count <= width:
        return [value if math.isfinite(value) else None for value in values]
    means: list[float | None] = []
    for bucket in range(width):
        start, end = bucket * count // width, (bucket + 1) * count // width
        finite = [value for value in values[start:end] if math.isfinite(value)]
        # Each term divided first: a mean of values near the float limits cannot overflow.
        means.append(math.fsum(value / len(finite) for value in finite) if finite else None)
    return means


def scaled(value: float, low: float, high: float) -> float:
    """Where `value` lies between `low` and `high` (< `high`), from 0 to 1.

    Halved first: the range of finite values near the float limits overflows to infinity.
    """
    return (value / 2 - low / 2) / (high / 2 - low / 2)


def metric_curves(metrics: Iterable[Metric]) -> dict[str, MetricCurve]:
    """Each numeric metric's curve, by name, in the order the names were first logged.

    Text values are skipped (a metric logged only as text has no curve). Several values at one
    step (a restarted attempt logging the epoch again) keep the one logged last.

    Args:
        metrics: The metrics, as a backend returns them (`Backend.get_metrics`).
    """
    by_name: dict[str, dict[int, float]] = {}
    ordered = sorted(enumerate(metrics), key=lambda item: (item[1].time, item[0]))
    for _, metric in ordered:
        if isinstance(metric.value, str):
            continue
        steps = by_name.setdefault(metric.name, {})
        step = metric.step if metric.step is not None else max(steps, default=-1) + 1
        steps[step] = float(metric.value)
    return {
        name: MetricCurve(name=name, points=tuple(sorted(steps.items())))
        for name, steps in by_name.items()
    }


def curves_markdown(curves: Mapping[str, MetricCurve], *, width: int = DEFAULT_WIDTH) -> str:
    """The curves as a markdown code block, one aligned summary line per metric.

    A code block keeps the sparkline's characters one column each in any markdown renderer, and
    keeps metric names (user input) from being read as markdown.
    """
    if not curves:
        return "_No numeric metrics yet._"
    pad = max(len(name) for name in curves)
    lines = [curve.summary(width, name_width=pad) for curve in curves.values()]
    # A name's line breaks would split its line; its ``` would close the block.
    safe = [" ".join(line.splitlines()).replace("```", "'''") for line in lines]
    return "```\n" + "\n".join(safe) + "\n```"


def history_steps(
    curves: Mapping[str, MetricCurve],
    names: Sequence[str] | None = None,
    *,
    max_rows: int | None = None,
) -> tuple[list[int], int]:
    """The steps a history table shows, and how many steps there are.

    With `max_rows`, a longer history shows that many steps spread evenly over it, the first
    and the last included (a metric logged per batch has thousands).

    Raises:
        ValueError: If `max_rows` is less than 2.
    """
    chosen = [curves[name] for name in (names if names is not None else list(curves))]
    steps = sorted({step for curve in chosen for step, _ in curve.points})
    if max_rows is None or len(steps) <= max_rows:
        return steps, len(steps)
    if max_rows < 2:
        raise ValueError(f"a history table needs at least 2 rows, got {max_rows}")
    last = len(steps) - 1
    picked = sorted({round(index * last / (max_rows - 1)) for index in range(max_rows)})
    return [steps[index] for index in picked], len(steps)


def history_rows(
    curves: Mapping[str, MetricCurve],
    names: Sequence[str] | None = None,
    *,
    max_rows: int | None = None,
) -> list[dict[str, int | str]]:
    """The curves as rows, one per step: `{"step": 3, "loss": "0.25", "accuracy": "0.9"}`.

    A metric with no value at a step gets `""`. The steps' column is `step_column`'s: `_step`
    when a metric is itself named `step`.

    Args:
        curves: The curves, by name.
        names: Which metrics, in which column order (default: all, in the mapping's order).
        max_rows: At most this many rows, spread evenly over the steps (`history_steps`).
    """
    chosen = [curves[name] for name in (names if names is not None else list(curves))]
    values = [dict(curve.points) for curve in chosen]
    steps, _ = history_steps(curves, names, max_rows=max_rows)
    step_key = step_column([curve.name for curve in chosen])
    rows: list[dict[str, int | str]] = []
    for step in steps:
        row: dict[str, int | str] = {step_key: step}
        for curve, at in zip(chosen, values, strict=True):
            row[curve.name] = format_number(at[step]) if step in at else ""
        rows.append(row)
    return rows


def history_table(
    curves: Mapping[str, MetricCurve],
    names: Sequence[str] | None = None,
    *,
    max_rows: int | None = None,
) -> str:
    """The curves as a markdown table, one row per step and one column per metric.

    Metric names are escaped (pipes, backslashes, backticks, `*`, `_`, `<`) so that a name
    cannot break the table or inject markup.

    Args:
        curves: The curves, by name.
        names: Which metrics, in which column order (default: all, in the mapping's order).
        max_rows: At most this many rows, spread evenly over the steps (`history_steps`).
    """
    rows = history_rows(curves, names, max_rows=max_rows)
    metric_names = names if names is not None else list(curves)
    columns = [step_column(metric_names), *metric_names]
    header = "| " + " | ".join(_escape_markdown(column) for column in columns) + " |"
    rule = "|" + "|".join(" --- " for _ in columns) + "|"
    body = ["| " + " | ".join(str(row[column]) for column in columns) + " |" for row in rows]
    return "\n".join([header, rule, *body])


def step_column(metric_names: Sequence[str]) -> str:
    """The name of a history table's steps column: `step`, or `_step` if a metric is `step`.

    (More `_` while a metric has that name too: a metric named `step` filled the steps column
    with its values.)
    """
    column = "step"
    while column in metric_names:
        column = "_" + column
    return column


def _escape_markdown(text: str) -> str:
    """Text that a markdown table cell shows as written."""
    text = text.replace("\\", "\\\\").replace("\n", " ").replace("\r", " ")
    for character in "|`*_<>[]#":
        text = text.replace(character, "\\" + character)
    return text


def progress(metrics: Iterable[Metric]) -> tuple[float, float] | None:
    """(epochs done, total epochs) as last reported by `report_progress`, None if never."""
    last: dict[str, Metric] = {}
    for metric in metrics:
        if metric.name in PROGRESS_METRICS and not isinstance(metric.value, str):
            seen = last.get(metric.name)
            if seen is None or metric.time >= seen.time:
                last[metric.name] = metric
    done, total = last.get(EPOCHS_DONE), last.get(TOTAL_EPOCHS)
    if done is None or total is None:
        return None
    numbers = float(done.value), float(total.value)
    if not all(math.isfinite(number) for number in numbers) or numbers[1] <= 0:
        return None  # a NaN or infinity is no progress (min/max would turn a NaN into 100%)
    return numbers


def progress_percent(metrics: Iterable[Metric]) -> float | None:
    """How far the job says it is, 0 to 100, None if it never reported its progress."""
    reported = progress(metrics)
    if reported is None:
        return None
    done, total = reported
    return max(0.0, min(100.0, 100.0 * done / total))
