"""Uploading to and downloading from a workspace's datastores by name (hi-ml's functions).

The workspace is `aml_workspace` or `workspace_config_path` when given, else found in
`himl_tasks.himl.workspace_resolution`'s order: inside an AzureML run its workspace, inside a
local run its workspace, a `config.json` here or above, the HIML_* workspace variables, and only
then the local workspace (`$HIML_HOME`, else `./.himl`).
"""

from __future__ import annotations

import logging
from pathlib import PurePath
from typing import Any

from himl_tasks.errors import InvalidInputError
from himl_tasks.himl.workspace_resolution import resolve_backend
from himl_tasks.storage import Datastore, TransferReport

logger = logging.getLogger(__name__)


def upload_to_datastore(
    datastore_name: str,
    local_data_folder: str | PurePath,
    remote_path: str | PurePath,
    aml_workspace: Any = None,
    workspace_config_path: str | PurePath | None = None,
    overwrite: bool = False,
    show_progress: bool = False,
    *,
    workspace: Any = None,
    skip_identical: bool = True,
) -> TransferReport:
    """Uploads all files in a folder to a datastore, without the folder's own name.

    `local_data_folder="foo/bar"` holding `1.txt` and `2.txt`, with `remote_path="baz"`,
    gives `baz/1.txt` and `baz/2.txt` in the datastore.

    Args:
        datastore_name: The datastore's name in the workspace ("" for the default one).
        local_data_folder: The folder whose files are uploaded (recursively).
        remote_path: The folder in the datastore to upload into.
        aml_workspace: The workspace: an `azureml.core.Workspace`, a backend, or a
            `LocalWorkspaceConfig`; default: found as the module docstring says.
        workspace_config_path: An AzureML `config.json` (as hi-ml takes), or a local
            datastores file (TOML) to use instead of the local workspace's own.
        overwrite: Replace files that exist remotely; if False they are kept and skipped.
        show_progress: Show a progress bar on stderr.
        workspace: This project's earlier name for `aml_workspace` (give one of them).
        skip_identical: Do not send files whose size and MD5 match the remote copy.

    Returns:
        What was uploaded and skipped.

    Example:
        ```python
        from himl_tasks import upload_to_datastore

        report = upload_to_datastore("", "data/raw", "raw/v1", show_progress=True)
        print(report.summary())
        ```
    """
    store = _datastore(datastore_name, aml_workspace, workspace, workspace_config_path)
    report = store.upload_folder(
        local_data_folder,
        remote_path,
        overwrite=overwrite,
        skip_identical=skip_identical,
        show_progress=show_progress,
    )
    logger.info(report.summary())
    return report


def download_from_datastore(
    datastore_name: str,
    file_prefix: str | PurePath,
    output_folder: str | PurePath,
    aml_workspace: Any = None,
    workspace_config_path: str | PurePath | None = None,
    overwrite: bool = False,
    show_progress: bool = False,
    *,
    workspace: Any = None,
    validate_checksum: bool = False,
    missing_ok: bool = False,
) -> TransferReport:
    """Downloads every file whose name starts with `file_prefix`, keeping full names.

    Datastore files `foo/bar/1.txt`, `foo/bar/2.txt` with `file_prefix="foo/bar"` and
    `output_folder="outputs"` give `outputs/foo/bar/1.txt` and `outputs/foo/bar/2.txt`.

    Args:
        datastore_name: The datastore's name in the workspace ("" for the default one).
        file_prefix: The prefix of the names to download; a full name downloads one file.
        output_folder: Where the files land (created if missing).
        aml_workspace: The workspace: an `azureml.core.Workspace`, a backend, or a
            `LocalWorkspaceConfig`; default: found as the module docstring says.
        workspace_config_path: An AzureML `config.json` (as hi-ml takes), or a local
            datastores file (TOML) to use instead of the local workspace's own.
        overwrite: Replace existing local files; if False they are kept and skipped.
        show_progress: Show a progress bar on stderr.
        workspace: This project's earlier name for `aml_workspace` (give one of them).
        validate_checksum: Verify each file's MD5 while receiving it.
        missing_ok: Return an empty report instead of raising when nothing matches.

    Returns:
        What was downloaded, skipped, and could not be verified.
    """
    store = _datastore(datastore_name, aml_workspace, workspace, workspace_config_path)
    report = store.download(
        file_prefix,
        output_folder,
        overwrite=overwrite,
        validate_checksum=validate_checksum,
        missing_ok=missing_ok,
        show_progress=show_progress,
    )
    logger.info(report.summary())
    return report


def _datastore(
    name: str, aml_workspace: Any, workspace: Any, workspace_config_path: str | PurePath | None
) -> Datastore:
    if aml_workspace is not None and workspace is not None:
        raise InvalidInputError(
            "pass the workspace once: aml_workspace (hi-ml's name) or workspace, not both"
        )
    given = aml_workspace if aml_workspace is not None else workspace
    return resolve_backend(given, workspace_config_path).datastore(name)
