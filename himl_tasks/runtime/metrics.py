"""Metric logging from inside a job: recorded with the run, or only logged outside any run."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from himl_tasks.errors import InvalidInputError
from himl_tasks.metric_curves import EPOCHS_DONE, TOTAL_EPOCHS
from himl_tasks.runtime.distributed import is_global_rank_zero
from himl_tasks.runtime.in_job_platform import current_run

logger = logging.getLogger(__name__)


def log_metric(name: str, value: float, step: int | None = None) -> None:
    """Records one metric value with the run; outside a run it is only logged (INFO)."""
    log_metrics({name: value}, step=step)


def log_metrics(values: Mapping[str, float], step: int | None = None) -> None:
    """Records several metric values at one step; only rank zero of a distributed job logs.

    Outside a run the values go to this module's logger, so a plain `python script.py`
    behaves the same without recording anything.
    """
    if not is_global_rank_zero():
        return
    run = current_run()
    if run is None:
        logger.info("metrics%s: %s", f" (step {step})" if step is not None else "", dict(values))
        return
    run.log_metrics(values, step=step)


def report_progress(epochs_done: int, total_epochs: int) -> None:
    """Tells whoever watches the run how far it is: `epochs_done` of `total_epochs`.

    Logged as two metrics (`epochs_done` at step `epochs_done`, and `total_epochs`), so it works
    on every backend and a watcher needs nothing but the run's metrics: the Prefect wing turns
    them into a progress artifact (100% when `epochs_done == total_epochs`). Call it after each
    epoch; outside a run it is only logged, like any metric.

    Raises:
        InvalidInputError: If `total_epochs` is not positive or `epochs_done` is outside
            0..`total_epochs`.
    """
    if total_epochs < 1 or not 0 <= epochs_done <= total_epochs:
        raise InvalidInputError(
            f"report_progress needs 0 <= epochs_done <= total_epochs and total_epochs >= 1,"
            f" got epochs_done={epochs_done}, total_epochs={total_epochs}"
        )
    log_metrics({EPOCHS_DONE: epochs_done, TOTAL_EPOCHS: total_epochs}, step=epochs_done)
