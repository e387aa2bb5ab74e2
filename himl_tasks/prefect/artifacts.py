"""What the tasks show in the Prefect UI: a link per run, a metrics table, transfer progress.

A watched run's training curves and progress: `metric_artifacts`.

Artifacts are keyed by what they show (`run-<run id>`, `metrics-<run id>`), so the UI's
artifact page lists each run's versions together.
"""

from __future__ import annotations

import threading
import time
from uuid import UUID

from prefect.artifacts import (
    create_link_artifact,
    create_progress_artifact,
    create_table_artifact,
)

from himl_tasks.runs import RunRef

# Prefect refuses artifact keys longer than this, or with characters other than lowercase
# letters, digits and dashes.
_MAX_KEY_LENGTH = 100


def artifact_key(kind: str, run_id: str) -> str:
    """The key of a run's artifact of one kind: `<kind>-<run id>`, as Prefect allows keys."""
    cleaned = "".join(c if c.isalnum() else "-" for c in run_id.lower()).strip("-")
    return f"{kind}-{cleaned}"[:_MAX_KEY_LENGTH]


def create_run_link(ref: RunRef, kind: str) -> None:
    """A link to a run (or a sweep: `kind`) in the backend's UI; nothing if it has none."""
    if ref.portal_url:
        create_link_artifact(
            link=ref.portal_url,
            link_text=f"{kind} {ref.recovery_id}",
            key=artifact_key(kind, ref.run_id),
            description=f"The {kind} {ref.recovery_id} on the {ref.backend} backend",
        )


def create_metrics_table(ref: RunRef, metrics: dict[str, float | str]) -> None:
    """A table of a run's final metrics, one row per metric; nothing if there are none."""
    if metrics:
        create_table_artifact(
            table=[{"metric": k, "value": v} for k, v in sorted(metrics.items())],
            key=artifact_key("metrics", ref.run_id),
            description=f"Final metrics of run {ref}",
        )


class ArtifactProgress:
    """Reports a transfer's progress to a Prefect progress artifact.

    The engine reports from its event loop; updates go to the API from a helper thread, at
    most one per second, so the transfer never waits for Prefect.

    Example:
        ```python
        with ArtifactProgress("upload to workspaceblobstore/scans") as progress:
            store.upload_folder("data", "scans", show_progress=progress)
        ```
    """

    def __init__(self, description: str) -> None:
        self.description = description
        self.total_bytes = 0
        self.done_bytes = 0
        self.artifact: UUID | None = None
        self._last_post = 0.0
        self._pending: threading.Thread | None = None

    def __enter__(self) -> ArtifactProgress:
        created = create_progress_artifact(0.0, description=self.description)
        self.artifact = created if isinstance(created, UUID) else None
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._pending is not None:
            self._pending.join()
        if self.artifact is not None and exc_info[0] is None:
            set_progress(self.artifact, 100.0)

    def start(self, files: int, total_bytes: int) -> None:
        """Called once the plan is known."""
        self.total_bytes = total_bytes

    def advance(self, nbytes: int) -> None:
        """Called as bytes move."""
        self.done_bytes += nbytes
        now = time.monotonic()
        busy = self._pending is not None and self._pending.is_alive()
        if self.artifact is None or busy or now - self._last_post < 1.0:
            return
        percent = 100.0 * self.done_bytes / self.total_bytes if self.total_bytes else 100.0
        self._last_post = now
        self._pending = threading.Thread(
            target=set_progress, args=(self.artifact, percent), daemon=True
        )
        self._pending.start()

    def file_done(self) -> None:
        """Called as each file completes."""


def set_progress(artifact: UUID, percent: float) -> None:
    """Updates a progress artifact (Prefect's own helper leaves its client open)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import ArtifactUpdate

    with get_client(sync_client=True) as client:
        client.update_artifact(artifact_id=artifact, artifact=ArtifactUpdate(data=percent))
