"""Prefect tasks that move data: datastore folders, datasets, a run's files and checkpoints.

Thin: the transfer engine (`himl_tasks.storage`) and the backend do the work; a task adds a
progress artifact and a log line. Each takes its workspace as a workspace block or its saved
name (see `himl_tasks.prefect.workspaces`), and returns a typed value: a `TransferReport`, a
`ResolvedDataset`, a folder.

The names differ from hi-ml's plain functions on purpose: `himl_tasks.upload_to_datastore`
and `himl_tasks.download_from_datastore` take hi-ml's arguments (a datastore name first, a
workspace object later), while these tasks take a workspace block first; one name never has
two signatures.

Example:
    ```python
    from prefect import flow

    from himl_tasks.prefect import ensure_dataset, upload_folder_to_datastore


    @flow
    def publish_scans(workspace_block: str = "local-workspace/demo") -> int:
        report = upload_folder_to_datastore(workspace_block, "", "data/raw", "scans")
        print(f"{report.files} files sent, {report.skipped_identical} already there")
        return ensure_dataset(workspace_block, "scans").version
    ```
"""

from __future__ import annotations

from pathlib import Path

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from himl_tasks import checkpoints
from himl_tasks.backends import checkpoint_files
from himl_tasks.datasets import DatasetConfig, ResolvedDataset, as_dataset_config
from himl_tasks.prefect.artifacts import ArtifactProgress
from himl_tasks.prefect.workspaces import WorkspaceBlockOrName, as_run_ref, backend_for
from himl_tasks.runs import RunRef
from himl_tasks.storage import TransferReport


@task(cache_policy=NO_CACHE)
def upload_folder_to_datastore(
    workspace_block: WorkspaceBlockOrName,
    datastore_name: str,
    local_folder: str | Path,
    remote_path: str,
    overwrite: bool = False,
) -> TransferReport:
    """Uploads a folder's files into a datastore folder (unchanged files are skipped).

    `local_folder="data/raw"` holding `a.csv` and `b/c.csv`, with `remote_path="scans"`,
    gives `scans/a.csv` and `scans/b/c.csv` (hi-ml's `upload_to_datastore` semantics).
    Progress shows as a progress artifact.

    Args:
        workspace_block: The workspace block, or its saved name.
        datastore_name: The datastore's name ("" for the workspace's default).
        local_folder: The folder whose files are uploaded (recursively).
        remote_path: The datastore folder to upload into.
        overwrite: Replace files that exist remotely (identical ones are skipped either way);
            if False they are kept and skipped.

    Returns:
        What was uploaded and skipped.
    """
    store = backend_for(workspace_block).datastore(datastore_name)
    with ArtifactProgress(f"upload to {store.name}/{remote_path}") as progress:
        report = store.upload_folder(
            local_folder, remote_path, overwrite=overwrite, show_progress=progress
        )
    get_run_logger().info(report.summary())
    return report


@task(cache_policy=NO_CACHE)
def download_datastore_files(
    workspace_block: WorkspaceBlockOrName,
    datastore_name: str,
    prefix: str,
    destination: str | Path,
    overwrite: bool = False,
    validate_checksum: bool = True,
) -> TransferReport:
    """Downloads the datastore files whose names start with `prefix`, keeping their names.

    Progress shows as a progress artifact.

    Args:
        workspace_block: The workspace block, or its saved name.
        datastore_name: The datastore's name ("" for the workspace's default).
        prefix: The start of the names to download; a full name downloads one file.
        destination: Where the files land (created if missing).
        overwrite: Replace existing local files; if False they are kept and skipped.
        validate_checksum: Verify each file's MD5 while receiving it.

    Returns:
        What was downloaded, skipped, and could not be verified.
    """
    store = backend_for(workspace_block).datastore(datastore_name)
    with ArtifactProgress(f"download from {store.name}/{prefix}") as progress:
        report = store.download(
            prefix,
            destination,
            overwrite=overwrite,
            validate_checksum=validate_checksum,
            show_progress=progress,
        )
    get_run_logger().info(report.summary())
    return report


@task(cache_policy=NO_CACHE)
def ensure_dataset(
    workspace_block: WorkspaceBlockOrName, dataset: DatasetConfig | str
) -> ResolvedDataset:
    """Finds a dataset's version, creating version 1 from its datastore folder if missing.

    Returns:
        The version, and the datastore folder holding its files.

    Example:
        ```python
        @flow
        def latest_scans(block: str = "local-workspace/demo") -> int:
            return ensure_dataset(block, DatasetConfig("scans")).version
        ```
    """
    resolved = backend_for(workspace_block).resolve_dataset(as_dataset_config(dataset))
    get_run_logger().info("dataset %s is version %d", resolved.name, resolved.version)
    return resolved


@task(cache_policy=NO_CACHE)
def download_run_files(
    workspace_block: WorkspaceBlockOrName,
    run: RunRef | str,
    prefix: str,
    destination: str | Path,
    validate_checksum: bool = True,
) -> TransferReport:
    """Downloads a run's files (outputs/, logs/, ...) whose names start with `prefix`.

    Args:
        workspace_block: The workspace block, or its saved name.
        run: The run, or its recovery id.
        prefix: The start of the names to download, e.g. "outputs/".
        destination: Where the files land, keeping their names in the run.
        validate_checksum: Verify each file's MD5 while receiving it.

    Returns:
        What was downloaded, and what could not be verified.
    """
    backend = backend_for(workspace_block)
    report = backend.download_files(
        as_run_ref(backend, run), prefix, Path(destination), validate_checksum=validate_checksum
    )
    get_run_logger().info(report.summary())
    return report


@task(cache_policy=NO_CACHE)
def download_run_checkpoints(
    workspace_block: WorkspaceBlockOrName,
    run: RunRef | str,
    destination: str | Path,
    checkpoint_folder: str = checkpoints.DEFAULT_CHECKPOINT_FOLDER,
) -> Path:
    """Downloads a run's checkpoints (checksums always checked); returns the local folder.

    Example:
        ```python
        @flow
        def fetch(run: str, block: str = "local-workspace/demo") -> Path:
            return download_run_checkpoints(block, run, "checkpoints")
        ```
    """
    backend = backend_for(workspace_block)
    checkpoint_files.download_checkpoints(
        backend,
        as_run_ref(backend, run),
        Path(destination),
        checkpoint_folder=checkpoint_folder,
    )
    return Path(destination) / checkpoint_folder
