"""A run's files as every backend keeps them: under a few known folders of one datastore.

`Backend.list_files` and `Backend.download_files` are built on these; the Prefect task
`himl_tasks.prefect.download_run_files` is built on `Backend.download_files`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from himl_tasks.errors import InvalidInputError
from himl_tasks.storage import Datastore, TransferReport
from himl_tasks.storage.names import normalize_prefix

RUN_FILE_FOLDERS = ("outputs/", "logs/", "azureml-logs/")


def run_file_prefixes(prefix: str, folders: Sequence[str] = RUN_FILE_FOLDERS) -> list[str]:
    """The prefixes to look under for a run's files matching `prefix` (run files only)."""
    cleaned = normalize_prefix(prefix)
    return [
        cleaned if cleaned.startswith(folder) else folder
        for folder in folders
        if cleaned.startswith(folder) or folder.startswith(cleaned)
    ]


def list_in_run_folders(
    store: Datastore, prefix: str, folders: Sequence[str] = RUN_FILE_FOLDERS
) -> list[str]:
    """Names of the run's files starting with `prefix`, sorted."""
    return sorted(f.name for part in run_file_prefixes(prefix, folders) for f in store.list(part))


def download_from_run_folders(
    store: Datastore,
    prefix: str,
    destination: Path,
    *,
    validate_checksum: bool = False,
    folders: Sequence[str] = RUN_FILE_FOLDERS,
    show_progress: bool = False,
) -> TransferReport:
    """Downloads the run's files starting with `prefix`, keeping their names.

    `show_progress` shows the transfer engine's progress bar on stderr.

    Raises:
        InvalidInputError: If `prefix` lies outside the run's folders.
        RemoteFilesNotFoundError: If nothing matches.
    """
    parts = run_file_prefixes(prefix, folders)
    if not parts:
        raise InvalidInputError(
            f"'{prefix}' is not among a run's files: they are under {', '.join(folders)}"
        )
    if len(parts) == 1:
        return store.download(
            parts[0], destination, validate_checksum=validate_checksum, show_progress=show_progress
        )
    report = TransferReport("download", store.name)
    for part in parts:
        report.add(
            store.download(
                part,
                destination,
                validate_checksum=validate_checksum,
                missing_ok=True,
                show_progress=show_progress,
            )
        )
    return report
