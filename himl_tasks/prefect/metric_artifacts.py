"""A running job's training curves and progress in the Prefect UI, updated as epochs arrive.

While a task watches a run, `MetricHistoryArtifacts` reads the run's metrics (at most every
`HISTORY_ARTIFACT_SECONDS`, and only at the watch loop's own looks, so never more often than the
backend is polled) and, when they changed, publishes:

- `curves-<run id>`: a markdown artifact, one unicode sparkline per numeric metric (min, max,
  last) and a per-step table. Prefect keeps each publication as a new version of the same key,
  so the artifact's history shows the curve growing.
- `history-<run id>`: the same per-step values as a table artifact.
- `progress-<run id>`: a progress artifact, once the job reports its progress with
  `himl_tasks.runtime.report_progress(epochs_done, total_epochs)` (the metrics `epochs_done`
  and `total_epochs`); those two metrics are bookkeeping and stay off the curves.
"""

from __future__ import annotations

import logging
import time
from uuid import UUID

from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
)

from himl_tasks.backends.base import Backend
from himl_tasks.errors import HimlError
from himl_tasks.metric_curves import (
    PROGRESS_METRICS,
    curves_markdown,
    history_rows,
    history_steps,
    history_table,
    metric_curves,
    progress_percent,
)
from himl_tasks.prefect.artifacts import artifact_key, set_progress
from himl_tasks.runs import Metric, RunRef

logger = logging.getLogger(__name__)

HISTORY_ARTIFACT_SECONDS = 5.0
"""The shortest pause between two reads of a watched run's metrics."""

HISTORY_TABLE_ROWS = 200
"""The most rows of the per-step tables: a longer history shows steps spread evenly over it."""


class MetricHistoryArtifacts:
    """Publishes a watched run's metric history and progress as Prefect artifacts.

    Example:
        ```python
        artifacts = MetricHistoryArtifacts(backend, ref)
        state = backend.watch(ref, should_cancel=lambda: artifacts.tick() or False)
        artifacts.publish()  # the final values
        ```
    """

    def __init__(self, backend: Backend, ref: RunRef) -> None:
        self.backend = backend
        self.ref = ref
        self.min_seconds = HISTORY_ARTIFACT_SECONDS
        self._last_read = float("-inf")
        self._seen: tuple[int, object] | None = None
        self._progress: UUID | None = None

    def tick(self) -> None:
        """Publishes if `min_seconds` passed since the last read; called at each look."""
        if time.monotonic() - self._last_read >= self.min_seconds:
            self.publish()

    def publish(self) -> None:
        """Reads the run's metrics and publishes them if they changed since the last time.

        A backend error while reading is logged and skipped: the curves are a view, and must
        not stop the task from watching (or canceling) the run.
        """
        self._last_read = time.monotonic()
        try:
            metrics = self.backend.get_metrics(self.ref)
        except HimlError as error:
            logger.warning("could not read the metrics of run %s: %s", self.ref, error)
            return
        seen = (len(metrics), max((m.time for m in metrics), default=None))
        if not metrics or seen == self._seen:
            return
        self._seen = seen
        self._publish_curves(metrics)
        self._publish_progress(metrics)

    def _publish_curves(self, metrics: list[Metric]) -> None:
        curves = {
            name: curve
            for name, curve in metric_curves(metrics).items()
            if name not in PROGRESS_METRICS
        }
        if not curves:
            return
        run_id = self.ref.run_id
        shown, total = history_steps(curves, max_rows=HISTORY_TABLE_ROWS)
        note = f"\n\n_{len(shown)} of {total} steps shown._" if len(shown) < total else ""
        create_markdown_artifact(
            markdown=f"### Training curves of run `{run_id}`\n\n{curves_markdown(curves)}\n\n"
            f"{history_table(curves, max_rows=HISTORY_TABLE_ROWS)}{note}\n",
            key=artifact_key("curves", run_id),
            description=f"Metric history of run {self.ref}, per step",
        )
        create_table_artifact(
            table=history_rows(curves, max_rows=HISTORY_TABLE_ROWS),
            key=artifact_key("history", run_id),
            description=f"Metric values of run {self.ref}, one row per step",
        )

    def _publish_progress(self, metrics: list[Metric]) -> None:
        percent = progress_percent(metrics)
        if percent is None:
            return
        if self._progress is None:
            created = create_progress_artifact(
                percent,
                key=artifact_key("progress", self.ref.run_id),
                description=f"Epochs done of run {self.ref}",
            )
            self._progress = created if isinstance(created, UUID) else None
        else:
            set_progress(self._progress, percent)
