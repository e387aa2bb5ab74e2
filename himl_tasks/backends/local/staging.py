"""Getting datasets to a local run's processes, and publishing what they wrote.

Inputs are resolved to versions when the run is submitted; here they are downloaded (or, for
folder datastores with `use_mounting`, handed over in place). Outputs are written by the job
into a folder of the run and become new dataset versions only when the run completes: uploaded
to `<name>/<run_id>/` in the datastore, then registered. A run that fails registers nothing.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from himl_tasks.backends.local.launch_plan import LaunchInput
from himl_tasks.errors import HimlError
from himl_tasks.storage import Datastore, LocalDatastore


@dataclass(frozen=True)
class StagedInput:
    """Where the job finds one input dataset, and whether that folder is a copy to remove."""

    folder: Path
    is_copy: bool


def stage_input(
    store: Datastore, dataset: LaunchInput, staging: Path, *, validate_checksum: bool = True
) -> StagedInput:
    """Makes one resolved input dataset available; returns where the job finds it.

    Args:
        store: The dataset's datastore.
        dataset: The resolved dataset, as the launch plan recorded it at submission.
        staging: A run-private folder for downloads.
        validate_checksum: Check every downloaded file against its stored MD5.
    """
    path, target = dataset.path, dataset.target_folder
    if dataset.use_mounting and isinstance(store, LocalDatastore):
        in_place = store.folder / path
        if target is None:
            return StagedInput(in_place, is_copy=False)
        _replace_with_link(target, in_place)
        return StagedInput(target, is_copy=False)
    # Downloaded copies (also the documented fallback for mounting a blob datastore).
    store.download(f"{path}/", staging, validate_checksum=validate_checksum)
    downloaded = staging.joinpath(*path.split("/"))
    if target is None:
        return StagedInput(downloaded, is_copy=True)
    _move_contents(downloaded, target)
    return StagedInput(target, is_copy=True)


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


def _replace_with_link(target: Path, source: Path) -> None:
    if target.is_symlink() or target.is_file():
        target.unlink()
    elif target.is_dir():
        if any(target.iterdir()):
            shutil.rmtree(target)
        else:
            target.rmdir()
    target.parent.mkdir(parents=True, exist_ok=True)
    target.symlink_to(source, target_is_directory=True)


def _move_contents(source: Path, target: Path) -> None:
    """Moves the files of `source` into `target`, replacing files of the same name."""
    if target.is_symlink():
        target.unlink()
    target.mkdir(parents=True, exist_ok=True)
    for directory, _, names in os.walk(source):
        relative = Path(directory).relative_to(source)
        (target / relative).mkdir(parents=True, exist_ok=True)
        for name in names:
            (Path(directory) / name).replace(target / relative / name)
    shutil.rmtree(source, ignore_errors=True)
