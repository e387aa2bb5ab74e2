"""Runs a published pipeline: what each firing of a pipeline schedule does on the local backend.

A local workspace's published pipeline is a Prefect deployment of this flow
(`LocalBackend.publish_pipeline`), whose schedules are the pipeline's schedules; the
deployment names the workspace and the pipeline, and each flow run submits the pipeline's
latest version and waits for it, its log in the flow run's log. Any workspace's published
pipeline can be run with it too:

    prefect deployment run 'run-published-pipeline/<pipeline>@<workspace digest>'
"""

from __future__ import annotations

from prefect import flow

from himl_tasks.backends.watching import DEFAULT_TIMEOUT_SECONDS
from himl_tasks.prefect import (
    WorkspaceBlockOrName,
    cancel_started_jobs,
    forget_started_jobs,
    submit_published_pipeline,
    wait_for_job,
)


@flow(
    name="run-published-pipeline",
    log_prints=True,
    on_cancellation=[cancel_started_jobs],
    on_crashed=[cancel_started_jobs],
    on_failure=[cancel_started_jobs],
    on_completion=[forget_started_jobs],
)
def run_published_pipeline(
    workspace_block: WorkspaceBlockOrName,
    pipeline: str,
    version: int | None = None,
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
) -> str:
    """Submits a published pipeline and waits for its run to complete.

    Args:
        workspace_block: The workspace the pipeline is published in: a workspace block or
            the name it is saved under.
        pipeline: The published pipeline's name.
        version: The version to run (default: the latest when the flow runs).
        timeout_seconds: How long to wait for the pipeline run.

    Returns:
        The pipeline run's recovery id.

    Raises:
        PipelineNotFoundError: Nothing is published under that name (or that version).
        JobFailedError: The pipeline run ended other than Completed.
    """
    ref = submit_published_pipeline(workspace_block, pipeline, version)
    wait_for_job(workspace_block, ref, timeout_seconds)
    return ref.recovery_id
