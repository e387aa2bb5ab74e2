"""The metric curve renderer: sparklines, summaries and per-step tables from `Metric`s."""

from __future__ import annotations

import datetime
import math

import pytest

from himl_tasks.metric_curves import (
    BARS,
    curves_markdown,
    history_rows,
    history_table,
    metric_curves,
    sparkline,
)
from himl_tasks.runs import Metric

T0 = datetime.datetime(2026, 11, 30, tzinfo=datetime.UTC)


def _metric(name: str, value: float | str, step: int | None, second: int = 0) -> Metric:
    return Metric(name=name, value=value, step=step, time=T0 + datetime.timedelta(seconds=second))


def test_sparkline_spans_lowest_to_highest_bar() -> None:
    assert sparkline([0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]) == BARS


def test_nan_and_infinity_show_as_gaps_and_do_not_scale_the_line() -> None:
    assert sparkline([1.0, math.nan, 3.0, math.inf]) == "▁ █ "


def test_one_point_and_a_flat_series_show_at_mid_height() -> None:
    assert sparkline([0.5]) == "▄"
    assert sparkline([2.0, 2.0, 2.0]) == "▄▄▄"


def test_no_finite_value_is_all_gaps_and_no_value_is_empty() -> None:
    assert sparkline([math.nan, math.nan]) == "  "
    assert sparkline([]) == ""


def test_many_points_are_averaged_into_the_width() -> None:
    # 1000 rising points into 10 buckets: still rising, exactly 10 characters.
    line = sparkline([float(i) for i in range(1000)], width=10)
    assert len(line) == 10
    assert line[0] == "▁" and line[-1] == "█"
    assert list(line) == sorted(line, key=BARS.index)
    # A bucket of NaNs only is a gap; a bucket with one finite value shows it.
    assert sparkline([math.nan, math.nan, 1.0, 5.0], width=2) == " ▄"
    assert sparkline([math.nan, math.nan, 1.0, 5.0, 0.0, 0.0], width=3) == " █▁"


def test_width_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="width of at least 1"):
        sparkline([1.0], width=0)


def test_curves_skip_text_values_and_order_by_step() -> None:
    metrics = [
        _metric("loss", 0.5, 1, second=2),
        _metric("loss", 0.9, 0, second=1),
        _metric("note", "started", None, second=0),
        _metric("hyperparams/value", "0.01", 0),
        _metric("loss", 0.25, 2, second=3),
    ]
    curves = metric_curves(metrics)
    assert list(curves) == ["loss"]
    loss = curves["loss"]
    assert loss.points == ((0, 0.9), (1, 0.5), (2, 0.25))
    assert (loss.minimum, loss.maximum, loss.last) == (0.25, 0.9, 0.25)
    assert loss.summary() == "loss  █▄▁  min 0.25  max 0.9  last 0.25  (3 points)"


def test_a_step_logged_twice_keeps_the_later_value_and_no_step_appends() -> None:
    metrics = [
        _metric("acc", 0.1, 0, second=0),
        _metric("acc", 0.2, 1, second=1),
        _metric("acc", 0.3, 1, second=5),  # a restarted attempt logged epoch 1 again
        _metric("acc", 0.4, None, second=6),
    ]
    assert metric_curves(metrics)["acc"].points == ((0, 0.1), (1, 0.3), (2, 0.4))


def test_a_curve_of_nan_only_has_no_min_or_max() -> None:
    curve = metric_curves([_metric("x", math.nan, 0)])["x"]
    assert curve.summary() == "x     min -  max -  last nan  (1 point)"


def test_markdown_aligns_names_in_a_code_block() -> None:
    curves = metric_curves(
        [_metric("loss", 1.0, 0), _metric("loss", 0.0, 1), _metric("val/accuracy", 0.5, 0)]
    )
    assert curves_markdown(curves) == (
        "```\n"
        "loss          █▁  min 0  max 1  last 0  (2 points)\n"
        "val/accuracy  ▄  min 0.5  max 0.5  last 0.5  (1 point)\n"
        "```"
    )
    assert curves_markdown({}) == "_No numeric metrics yet._"


def test_markdown_code_block_cannot_be_closed_by_a_metric_name() -> None:
    text = curves_markdown(metric_curves([_metric("a```<b>", 1.0, 0)]))
    assert text.count("```") == 2


def test_history_table_has_a_row_per_step_and_blank_missing_cells() -> None:
    curves = metric_curves(
        [
            _metric("loss", 0.5, 0),
            _metric("loss", 0.123456, 1),
            _metric("val|acc", 0.75, 1),
        ]
    )
    assert history_rows(curves) == [
        {"step": 0, "loss": "0.5", "val|acc": ""},
        {"step": 1, "loss": "0.1235", "val|acc": "0.75"},
    ]
    assert history_table(curves, ["val|acc", "loss"]) == (
        "| step | val\\|acc | loss |\n| --- | --- | --- |\n| 0 |  | 0.5 |\n| 1 | 0.75 | 0.1235 |"
    )


def test_a_metric_named_step_keeps_its_column_apart_from_the_steps() -> None:
    # Its values overwrote the steps column: the table said steps 0, 10, 20 for steps 0, 1, 2.
    curves = metric_curves(
        [
            _metric(name, value * i, i)
            for i in range(3)
            for name, value in (("step", 10), ("loss", 1))
        ]
    )
    assert history_rows(curves) == [
        {"_step": 0, "step": "0", "loss": "0"},
        {"_step": 1, "step": "10", "loss": "1"},
        {"_step": 2, "step": "20", "loss": "2"},
    ]
    assert history_table(curves, ["loss"]).splitlines()[:3] == [
        "| step | loss |", "| --- | --- |", "| 0 | 0 |"
    ]  # fmt: skip
    assert history_table(curves).splitlines()[0] == "| \\_step | step | loss |"


def test_progress_is_the_last_reported_epochs_done_of_total() -> None:
    from himl_tasks.metric_curves import progress, progress_percent

    assert progress_percent([_metric("loss", 1.0, 0)]) is None
    reported = [
        _metric("total_epochs", 4, 1, second=1),
        _metric("epochs_done", 1, 1, second=1),
        _metric("epochs_done", 3, 3, second=3),
        _metric("epochs_done", 2, 2, second=2),
    ]
    assert progress(reported) == (3.0, 4.0)
    assert progress_percent(reported) == 75.0
    assert progress_percent([*reported, _metric("total_epochs", 0, 4, second=9)]) is None


def test_values_near_the_float_limits_draw_a_line_instead_of_raising() -> None:
    # A diverging job logs finite values near the float limits: the range (high - low) and a
    # bucket's sum overflow to infinity. The line must still be drawn (it used to raise
    # ValueError / OverflowError, which stopped `himl metrics` and the Prefect task watching).
    assert sparkline([-1e308, 1e308]) == "▁█"
    assert sparkline([1e308] * 100) == "▄" * 40
    assert sparkline([-1e308] * 50 + [1e308] * 50, width=2) == "▁█"


def test_progress_that_is_not_a_finite_number_is_no_progress() -> None:
    from himl_tasks.metric_curves import progress_percent

    nan_done = [_metric("epochs_done", math.nan, 0), _metric("total_epochs", 10.0, 0)]
    nan_total = [_metric("epochs_done", 3.0, 0), _metric("total_epochs", math.nan, 0)]
    assert progress_percent(nan_done) is None  # was 100.0: a NaN reported as done
    assert progress_percent(nan_total) is None
