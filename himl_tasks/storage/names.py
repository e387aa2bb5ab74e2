"""Blob names: building them from local paths and mapping them safely back to local paths.

Blob names are '/'-separated and relative. A name that would land outside a destination folder
(a '..' or '.' segment, an absolute path, a backslash, a drive letter) is refused.
"""

from __future__ import annotations

from pathlib import Path, PurePath

from himl_tasks.errors import InvalidInputError, UnsafeBlobNameError


def normalize_remote_path(remote_path: str | PurePath) -> str:
    """Turns a user's remote folder into a clean blob name prefix without slashes at its ends.

    Args:
        remote_path: A folder in the datastore, e.g. "baz", Path("a/b") or "" for the root.

    Returns:
        The folder as a '/'-separated name, "" for the datastore root.

    Raises:
        InvalidInputError: If the path has '..' segments or backslashes.
    """
    text = remote_path.as_posix() if isinstance(remote_path, PurePath) else str(remote_path)
    if "\\" in text:
        raise InvalidInputError(
            f"remote path {text!r} contains a backslash; datastore paths are '/'-separated"
        )
    segments = [s for s in text.split("/") if s not in ("", ".")]
    if ".." in segments:
        raise InvalidInputError(
            f"remote path {text!r} contains '..'; give a path inside the datastore"
        )
    return "/".join(segments)


def normalize_prefix(prefix: str | PurePath) -> str:
    """Turns a user's download or listing prefix into a plain string prefix of blob names.

    Unlike a remote folder, a prefix may end in '/' (or not) and match part of a name.
    """
    text = prefix.as_posix() if isinstance(prefix, PurePath) else str(prefix)
    return "" if text == "." else text.lstrip("/")


def join_blob_name(folder: str, relative: str) -> str:
    """Joins a normalized remote folder and a '/'-separated relative name."""
    return f"{folder}/{relative}" if folder else relative


def local_target(datastore: str, output_folder: Path, blob_name: str) -> Path:
    """Returns where a blob lands under a folder, refusing names that would escape it.

    Args:
        datastore: Datastore name, for the error message.
        output_folder: The destination folder.
        blob_name: The blob's full name.

    Returns:
        `output_folder` joined with the blob name's segments.

    Raises:
        UnsafeBlobNameError: If the name is absolute, has '.' or '..' segments, empty segments,
            backslashes or a drive letter.
    """
    segments = blob_name.split("/")
    unsafe = (
        "\\" in blob_name
        or "\0" in blob_name
        or blob_name.startswith("/")
        or any(s in ("", ".", "..") for s in segments)
        or (len(segments[0]) >= 2 and segments[0][1] == ":")
    )
    if unsafe:
        raise UnsafeBlobNameError(
            datastore,
            f"blob name {blob_name!r} would be written outside the folder {output_folder}; "
            "it was refused and nothing was downloaded. Rename the blob in the datastore.",
        )
    return output_folder.joinpath(*segments)
