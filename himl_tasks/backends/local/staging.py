"""Getting datasets to a local run's processes, and publishing what they wrote.

Inputs are resolved to versions when the run is submitted; here they are downloaded (or, for
folder datastores with `use_mounting`, handed over in place). Outputs are written by the job
into a folder of the run and become new dataset versions only when the run completes: uploaded
to `<name>/<run_id>/` in the datastore, then registered. A run that fails registers nothing.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

from himl_tasks.backends.dataset_folders import download_dataset, link_dataset
from himl_tasks.backends.local.launch_plan import LaunchInput
from himl_tasks.errors import HimlError
from himl_tasks.storage import Datastore, LocalDatastore


@dataclass(frozen=True)
class StagedInput:
    """Where the job finds one input dataset, and whether that folder is a copy to remove."""

    folder: Path
    is_copy: bool


def stage_input(store: Datastore, dataset: LaunchInput, staging: Path) -> StagedInput:
    """Makes one resolved input dataset available; returns where the job finds it.

    A download checks every file against its stored MD5.

    Args:
        store: The dataset's datastore.
        dataset: The resolved dataset, as the launch plan recorded it at submission.
        staging: A run-private folder for downloads.
    """
    if dataset.use_mounting and isinstance(store, LocalDatastore):
        return StagedInput(link_dataset(store, dataset.path, dataset.target_folder), False)
    # Downloaded copies (also the documented fallback for mounting a blob datastore).
    folder = download_dataset(store, dataset.path, dataset.target_folder or staging)
    return StagedInput(folder, is_copy=True)


def publish_output(store: Datastore, folder: Path, name: str, run_id: str) -> str:
    """Uploads an output folder to `<name>/<run_id>` in the datastore; returns that path.

    On failure the partly uploaded files are deleted before the error propagates.
    """
    path = f"{name}/{run_id}"
    try:
        store.upload_folder(folder, path, overwrite=True)
    except BaseException:
        with contextlib.suppress(HimlError):  # the upload's error is the one to report
            store.delete(f"{path}/")
        raise
    return path
