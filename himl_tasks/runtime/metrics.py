"""Metric logging from inside a job: recorded with the run, or only logged outside any run."""

from __future__ import annotations

import logging
from collections.abc import Mapping

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
