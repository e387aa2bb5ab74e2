"""The Prefect wing: tasks, blocks, artifacts and flow hooks, thin over the layers below.

Modules, one job each:
- `blocks`: the workspace blocks (`LocalWorkspace`, `AzureMLWorkspace`), credentials as secrets;
- `workspaces`: a task's workspace argument (a block or its saved name) made a backend;
- `data_tasks`: datastore folders, datasets, a run's files and checkpoints;
- `job_tasks`: submit, wait, run to completion, sweep;
- `pipeline_tasks`: run a native pipeline to completion;
- `publishing_tasks`: publish a pipeline, submit a published one, schedule it;
- `cancellation`: whether the flow run a task watches in is being canceled;
- `hooks`: flow hooks that cancel the jobs a flow run leaves behind;
- `artifacts`: run links, metrics tables, transfer progress.

The tasks, blocks and hooks are importable from here (`from himl_tasks.prefect import
run_job`). A task and a plain `himl_tasks` function never share a name unless they share a
signature: hi-ml's `upload_to_datastore` is a function, the task is
`upload_folder_to_datastore`.
"""

from himl_tasks.prefect.blocks import AzureMLWorkspace, LocalWorkspace, WorkspaceBlock
from himl_tasks.prefect.data_tasks import (
    download_datastore_files,
    download_run_checkpoints,
    download_run_files,
    ensure_dataset,
    upload_folder_to_datastore,
)
from himl_tasks.prefect.hooks import cancel_started_jobs, forget_started_jobs
from himl_tasks.prefect.job_tasks import run_job, run_sweep, submit_job, wait_for_job
from himl_tasks.prefect.pipeline_tasks import run_pipeline
from himl_tasks.prefect.publishing_tasks import (
    publish_pipeline,
    remove_pipeline_schedule,
    schedule_pipeline,
    submit_published_pipeline,
)
from himl_tasks.prefect.workspaces import WorkspaceBlockOrName, backend_for

__all__ = [
    "AzureMLWorkspace",
    "LocalWorkspace",
    "WorkspaceBlock",
    "WorkspaceBlockOrName",
    "backend_for",
    "cancel_started_jobs",
    "download_datastore_files",
    "download_run_checkpoints",
    "download_run_files",
    "ensure_dataset",
    "forget_started_jobs",
    "publish_pipeline",
    "remove_pipeline_schedule",
    "run_job",
    "run_pipeline",
    "run_sweep",
    "schedule_pipeline",
    "submit_job",
    "submit_published_pipeline",
    "upload_folder_to_datastore",
    "wait_for_job",
]
