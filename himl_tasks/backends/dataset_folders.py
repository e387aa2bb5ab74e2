"""Putting a dataset version's files into a folder: one way, for a job and for a plain script.

The local backend's supervisor stages a job's inputs with these, and `Backend.local_dataset_folder`
brings a dataset to a script that runs outside any job with them: a dataset is either downloaded
through the transfer engine (checksums checked, temporary names, files of the same name replaced)
or, for a folder datastore asked to mount, handed over in place.
"""

from __future__ import annotations

from pathlib import Path

from himl_tasks.errors import InvalidInputError
from himl_tasks.storage import Datastore, LocalDatastore
from himl_tasks.storage.folder_view import FolderView


def download_dataset(store: Datastore, path: str, destination: Path) -> Path:
    """Downloads the files under `path` into `destination`, names relative to `path`.

    A `destination` that is a link (a dataset handed over in place before) is replaced by a
    folder first: writing through it would change the datastore.

    Returns:
        `destination`.

    Raises:
        InvalidInputError: If `destination` is in a folder datastore, or holds it.
        RemoteFilesNotFoundError: If the datastore holds no files under `path`.
        ChecksumMismatchError: If a file's bytes do not match its stored MD5.
    """
    if isinstance(store, LocalDatastore):
        _refuse_datastore_folder(store, destination)
    if destination.is_symlink():
        destination.unlink()
    FolderView(store, path).download("", destination, validate_checksum=True, overwrite=True)
    return destination


def link_dataset(store: LocalDatastore, path: str, destination: Path | None) -> Path:
    """Hands over a folder datastore's dataset in place (what mounting means for a folder).

    Args:
        store: The folder datastore.
        path: The dataset's folder in it.
        destination: Where the dataset should appear: a link to it, made in place of a
            missing or empty folder or of an earlier link; or None to use the folder in the
            datastore itself.

    Returns:
        Where the files are: `destination`, or the datastore's own folder.

    Raises:
        InvalidInputError: If `destination` is in the datastore or holds it, is a file, or is
            a folder that holds files (a mount point must be empty, as blobfuse's is: what is
            there is the user's, not a copy to replace), or cannot be made.
    """
    in_place = store.folder / path
    if destination is None:
        return in_place
    _refuse_datastore_folder(store, destination)
    if destination.is_symlink():
        destination.unlink()  # a dataset handed over here before
    elif destination.exists() and not destination.is_dir():
        raise InvalidInputError(
            f"cannot hand dataset folder '{path}' over at {destination}: it is a file, which "
            "is not removed; give an empty or missing folder"
        )
    elif destination.is_dir():
        if any(destination.iterdir()):
            raise InvalidInputError(
                f"cannot hand dataset folder '{path}' over at {destination}: that folder holds "
                "files, which are not removed; give an empty or missing folder"
            )
        destination.rmdir()
    try:
        destination.parent.mkdir(parents=True, exist_ok=True)
        destination.symlink_to(in_place, target_is_directory=True)
    except OSError as error:
        # A folder that cannot be made there (a read-only or special file system): trying
        # again fails the same way.
        raise InvalidInputError(
            f"cannot make {destination} a link to dataset folder '{path}': "
            f"{error.strerror or error}; give a folder that can be created"
        ) from error
    return destination


def _refuse_datastore_folder(store: LocalDatastore, destination: Path) -> None:
    """A dataset is never put in place of the datastore's files, nor written among them."""
    ours = store.folder.resolve()
    # The link itself, not where it points, is replaced: resolve only its parent.
    there = (
        destination.parent.resolve() / destination.name
        if destination.is_symlink()
        else destination.resolve()
    )
    if there == ours or ours in there.parents or there in ours.parents:
        raise InvalidInputError(
            f"cannot put a dataset at {destination}: it is in folder datastore "
            f"'{store.name}' ({store.folder}) or holds it; choose a folder outside the datastore"
        )
