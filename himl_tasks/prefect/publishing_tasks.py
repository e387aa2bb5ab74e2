"""Prefect tasks that publish pipelines, submit published ones, and schedule them.

Thin over the Backend primitives (`publish_pipeline`, `submit_published_pipeline`,
`schedule_pipeline`, `remove_pipeline_schedule`): on AzureML a published pipeline is a
pipeline endpoint and a schedule the workspace's; on the local backend both are Prefect
deployments' (`himl_tasks.backends.local.pipeline_deployments`). Publishing and scheduling
are idempotent by nature (an unchanged pipeline is its latest version again; a schedule is
updated by its name), so a retried task changes nothing twice.

Example:
    ```python
    from prefect import flow

    from himl_tasks import JobSpec, PipelineSchedule, PipelineSpec, PipelineStep
    from himl_tasks.prefect import publish_pipeline, schedule_pipeline


    @flow
    def publish_nightly(workspace_block: str = "local-workspace/demo") -> str:
        pipeline = PipelineSpec(
            "retrain", [PipelineStep("train", JobSpec(entry_script="train.py"))]
        )
        published = publish_pipeline(workspace_block, pipeline, description="nightly retrain")
        schedule_pipeline(workspace_block, PipelineSchedule("nightly", "retrain", "0 2 * * *"))
        return published.endpoint
    ```
"""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.artifacts import create_link_artifact
from prefect.cache_policies import NO_CACHE

from himl_tasks.pipeline_runs import PipelineSchedule, PublishedPipeline
from himl_tasks.pipelines import PipelineSpec
from himl_tasks.prefect.artifacts import artifact_key, create_run_link
from himl_tasks.prefect.hooks import remember_started
from himl_tasks.prefect.workspaces import WorkspaceBlockOrName, backend_for
from himl_tasks.runs import RunRef

SUBMISSION_PREFIX = "himl-published-"


@task(cache_policy=NO_CACHE)
def publish_pipeline(
    workspace_block: WorkspaceBlockOrName, pipeline: PipelineSpec, description: str = ""
) -> PublishedPipeline:
    """Publishes a pipeline as its next version (or finds it published, unchanged).

    Artifact: a link to the version's endpoint.
    """
    published = backend_for(workspace_block).publish_pipeline(pipeline, description=description)
    get_run_logger().info(
        "pipeline %s is published as version %d: %s",
        published.name,
        published.version,
        published.endpoint,
    )
    create_link_artifact(
        link=published.endpoint,
        link_text=f"{published.name} version {published.version}",
        key=artifact_key("published", f"{published.name}-{published.version}"),
        description=f"Where pipeline {published.name} version {published.version} is submitted",
    )
    return published


@task(cache_policy=NO_CACHE)
def submit_published_pipeline(
    workspace_block: WorkspaceBlockOrName, name: str, version: int | None = None
) -> RunRef:
    """Submits a published pipeline (its latest version unless `version` is given).

    Submitted once per flow run: a retried flow run finds the pipeline run it made. The
    run is recorded for the flow hooks (`cancel_started_jobs`).

    Artifact: a link to the pipeline run.
    """
    from prefect.runtime import flow_run

    backend = backend_for(workspace_block)
    submission = None
    if flow_run.id:
        submission = f"{SUBMISSION_PREFIX}{name}-{version or 'latest'}-{flow_run.id}"
    ref = backend.submit_published_pipeline(name, version=version, submission_id=submission)
    remember_started(workspace_block, backend, ref)
    get_run_logger().info("submitted published pipeline %s as run %s", name, ref)
    create_run_link(ref, "pipeline")
    return ref


@task(cache_policy=NO_CACHE)
def schedule_pipeline(
    workspace_block: WorkspaceBlockOrName, schedule: PipelineSchedule
) -> PipelineSchedule:
    """Creates the schedule of a published pipeline, or updates the one of its name.

    Returns it with the workspace's id.
    """
    made = backend_for(workspace_block).schedule_pipeline(schedule)
    get_run_logger().info(
        "schedule %s submits pipeline %s at '%s' (%s)%s",
        made.name,
        made.pipeline,
        made.cron,
        made.timezone,
        "" if made.active else ", paused",
    )
    return made


@task(cache_policy=NO_CACHE)
def remove_pipeline_schedule(workspace_block: WorkspaceBlockOrName, name: str) -> None:
    """Removes the schedule of that name (removing none is no error)."""
    backend_for(workspace_block).remove_pipeline_schedule(name)
