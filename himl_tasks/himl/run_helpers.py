"""hi-ml's helpers for runs that exist: finding them and downloading their files, on any backend.

Each takes hi-ml's arguments. Where hi-ml takes a `Workspace` (`workspace=` or
`aml_workspace=`), anything `resolve_backend` accepts will do (an `azureml.core.Workspace`, a
backend, a `LocalWorkspaceConfig`), and without one the workspace is found in
`resolve_backend`'s order. Runs are named by a run recovery id (`experiment:run_id`) or a bare run
id. Files travel through the backend's transfer engine, with checksums, never an SDK's download.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from himl_tasks.backends.base import Backend
from himl_tasks.errors import InvalidInputError, RemoteFilesNotFoundError
from himl_tasks.himl.workspace_resolution import resolve_backend
from himl_tasks.runs import RUN_RECOVERY_FILE, read_most_recent_run
from himl_tasks.runtime import is_local_rank_zero, torch_barrier
from himl_tasks.storage import TransferReport
from himl_tasks.storage.transfer_inputs import local_path

logger = logging.getLogger(__name__)


def fetch_run(workspace: Any, run_recovery_id: str) -> Any:
    """The run of a recovery id (`experiment:run_id`) or a bare run id, as hi-ml's `fetch_run`.

    Args:
        workspace: Where the run is: an `azureml.core.Workspace`, a backend, a
            `LocalWorkspaceConfig`, or None to find it (`resolve_backend`'s order).
        run_recovery_id: `experiment:run_id`, or the run id alone.

    Returns:
        The run as hi-ml hands it out (`run_object`): an azureml `Run` on AzureML v1.

    Raises:
        RunNotFoundError: If there is no such run in the workspace.
    """
    backend = resolve_backend(workspace)
    return backend.run_object(backend.get_run_ref(run_recovery_id))


def get_most_recent_run(
    run_recovery_file: str | os.PathLike[str] = RUN_RECOVERY_FILE, workspace: Any = None
) -> Any:
    """The run named in a `most_recent_run.txt` (written when a run is submitted), as hi-ml's.

    Args:
        run_recovery_file: The file (default: `most_recent_run.txt` in the current folder).
        workspace: As `fetch_run`'s.

    Returns:
        The run, as `fetch_run` returns it.

    Raises:
        RunNotFoundError: If the file is missing or empty (hi-ml: an AssertionError), or the
            run it names does not exist.
    """
    return fetch_run(workspace, read_most_recent_run(run_recovery_file))


def download_files_from_run_id(
    run_id: str,
    output_folder: str | os.PathLike[str],
    prefix: str = "",
    workspace: Any = None,
    workspace_config_path: str | os.PathLike[str] | None = None,
    validate_checksum: bool = False,
) -> TransferReport | None:
    """Downloads a run's files whose names start with `prefix`, as hi-ml's function does.

    Files keep their full name in the run under `output_folder`: prefix `outputs/checkpoints`
    gives `output_folder/outputs/checkpoints/...`. In a distributed job only the first process
    on each node downloads; every process then waits at `torch_barrier()`, so all of them find
    the files afterwards.

    Args:
        run_id: A run id, or a recovery id (`experiment:run_id`).
        output_folder: Where the files land.
        prefix: The start of the names to download ("" for all the run's files).
        workspace: The run's workspace (see the module docstring).
        workspace_config_path: An AzureML `config.json` (or a local datastores file), used
            when `workspace` is not given.
        validate_checksum: Check each file's MD5 as it arrives.

    Returns:
        What was downloaded (None in the processes that did not download).

    Raises:
        RemoteFilesNotFoundError: (a FileNotFoundError, as hi-ml raises) If no file of the run
            starts with `prefix`.
        RunNotFoundError: If there is no such run.
    """
    destination = local_path("output_folder", output_folder)  # before any service call
    backend = resolve_backend(workspace, workspace_config_path)
    report = None
    if is_local_rank_zero():
        report = _download_run_files(backend, run_id, prefix, destination, validate_checksum)
    torch_barrier()
    return report


def download_checkpoints_from_run_id(
    run_id: str,
    checkpoint_path_or_folder: str | None = None,
    output_folder: str | os.PathLike[str] | None = None,
    aml_workspace: Any = None,
    workspace_config_path: str | os.PathLike[str] | None = None,
    *,
    checkpoint_dir: str | None = None,
) -> TransferReport | None:
    """Downloads one checkpoint file, or a folder of them, of a run; checksums always checked.

    hi-ml's function: `download_files_from_run_id` with the checkpoint path as the prefix.

    Args:
        run_id: A run id, or a recovery id (`experiment:run_id`).
        checkpoint_path_or_folder: The checkpoint's path in the run's files, or a folder of
            them, e.g. "outputs/checkpoints".
        output_folder: Where the files land (keeping their path in the run).
        aml_workspace: The run's workspace (see the module docstring).
        workspace_config_path: As `download_files_from_run_id`'s.
        checkpoint_dir: hi-ml 0.1's name for `checkpoint_path_or_folder`.

    Returns:
        What was downloaded (None in the processes that did not download).

    Raises:
        InvalidInputError: If the checkpoint path is given twice or not at all, or no
            `output_folder` is given.
        RemoteFilesNotFoundError: If the run has no such file or folder.
    """
    if (checkpoint_path_or_folder is None) == (checkpoint_dir is None):
        raise InvalidInputError(
            "pass the checkpoint's path in the run as checkpoint_path_or_folder (or hi-ml "
            "0.1's checkpoint_dir), exactly one of them"
        )
    if output_folder is None:
        raise InvalidInputError("output_folder is required: where the checkpoints are saved")
    return download_files_from_run_id(
        run_id,
        output_folder,
        prefix=checkpoint_path_or_folder or checkpoint_dir or "",
        workspace=aml_workspace,
        workspace_config_path=workspace_config_path,
        validate_checksum=True,
    )


def _download_run_files(
    backend: Backend, run_id: str, prefix: str, destination: Path, validate_checksum: bool
) -> TransferReport:
    ref = backend.get_run_ref(run_id)
    if not backend.list_files(ref, prefix):
        with_prefix = f' with prefix "{prefix}"' if prefix else ""
        raise RemoteFilesNotFoundError(
            f"run {ref}",
            f"no files{with_prefix} were found for run with ID {ref.run_id}; its files are "
            f"under {', '.join(backend.run_file_folders)}",
        )
    report = backend.download_files(ref, prefix, destination, validate_checksum=validate_checksum)
    logger.info(report.summary())
    return report
