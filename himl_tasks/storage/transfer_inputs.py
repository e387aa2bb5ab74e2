"""Checking what a caller hands a transfer, before anything moves.

Local paths, flags and the progress option are refused when unusable; the files to upload are
gathered (from a folder walked, or from a list) and refused together when some cannot be read;
names a transfer cannot use are listed in one error. Each check raises one `InvalidInputError`
(or `UnusableNamesError`) saying what to do, before the transfer sends or writes anything.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path, PurePath

from himl_tasks.errors import (
    InputPathNotFoundError,
    InvalidInputError,
    UnsafeBlobNameError,
    UnusableNamesError,
)
from himl_tasks.storage.options import flag
from himl_tasks.storage.pinning import file_identity
from himl_tasks.storage.progress import ProgressBar, SilentProgress, TransferProgress

LISTED_PROBLEMS = 20
"""How many unusable names an error message lists (the error's `problems` holds them all)."""

_PROGRESS_METHODS = ("start", "advance", "file_done")


@dataclass(frozen=True)
class LocalFile:
    """A local file chosen for upload, with its name relative to what is uploaded."""

    path: Path
    relative: str
    status: os.stat_result

    @property
    def size(self) -> int:
        """Its size when it was chosen."""
        return self.status.st_size


def walk_files(folder: Path) -> list[LocalFile]:
    """Lists the regular files under a folder, recursively, with '/'-separated relative names.

    Linked folders are followed, but a link to a folder that contains it (a loop) is refused.
    """
    found: list[LocalFile] = []
    unreadable: list[str] = []
    top = folder.stat()
    stack: list[tuple[Path, str, frozenset[tuple[int, int]]]] = [
        (folder, "", frozenset({file_identity(top)}))
    ]
    while stack:
        directory, relative_dir, above = stack.pop()
        with os.scandir(directory) as entries:
            for entry in entries:
                relative = f"{relative_dir}{entry.name}"
                if entry.is_dir():
                    status = entry.stat()
                    identity = file_identity(status)
                    if identity in above:
                        raise InvalidInputError(
                            f"cannot upload {folder}: {entry.path} links to a folder that "
                            "contains it (a loop); remove the link or upload a folder without it"
                        )
                    stack.append((Path(entry.path), f"{relative}/", above | {identity}))
                elif entry.is_file():
                    found.append(LocalFile(Path(entry.path), relative, entry.stat()))
                elif entry.is_symlink() and not Path(entry.path).exists():
                    unreadable.append(f"{entry.path}: a broken symbolic link")
                else:
                    # Reading a fifo would wait for a writer forever; a device has no end.
                    unreadable.append(
                        f"{entry.path}: not a regular file (a fifo, socket or device)"
                    )
    if unreadable:
        raise InvalidInputError(
            f"cannot upload {folder}: {len(unreadable)} "
            f"{'entries are' if len(unreadable) != 1 else 'entry is'} not files that can be "
            "read; nothing was sent. Remove them, or upload the others with upload_files:"
            + _listed(sorted(unreadable))
        )
    found.sort(key=lambda f: f.relative)
    return found


def chosen_files(
    files: Iterable[str | PurePath], relative_root: str | PurePath | None
) -> list[LocalFile]:
    """Returns the files given to `upload_files`, each named relative to `relative_root`.

    Raises:
        InvalidInputError: If no file is given, a file is missing, is a folder or not a regular
            file, lies outside `relative_root`, or two files would get the same name.
    """
    root = local_path("relative_root", relative_root) if relative_root is not None else None
    chosen: list[LocalFile] = []
    for item in files:
        path = local_path("each file", item)
        if not path.is_file():
            if path.is_dir():
                what = "is a folder"
            elif path.exists():
                what = "is not a regular file (a fifo, socket or device)"
            else:
                what = "does not exist"
            error = InputPathNotFoundError if what == "does not exist" else InvalidInputError
            raise error(f"cannot upload {path}: it {what}; give existing files")
        if root is None:
            relative = path.name
        else:
            try:
                relative = path.resolve().relative_to(root.resolve()).as_posix()
            except ValueError:
                raise InvalidInputError(
                    f"cannot upload {path}: it is not inside relative_root {root}"
                ) from None
        chosen.append(LocalFile(path, relative, path.stat()))
    if not chosen:
        raise InvalidInputError("upload_files was given no files")
    seen: dict[str, Path] = {}
    for local in chosen:
        if local.relative in seen:
            raise InvalidInputError(
                f"{seen[local.relative]} and {local.path} would both be uploaded as "
                f"'{local.relative}'; pass relative_root to keep their folders apart"
            )
        seen[local.relative] = local.path
    return chosen


def local_path(option: str, value: object) -> Path:
    """Returns a user's local path argument as a Path, refusing None, other types, "" and NUL."""
    if not isinstance(value, (str, os.PathLike)):
        raise InvalidInputError(f"{option} must be a str or a path, not {type(value).__name__}")
    text = os.fspath(value)
    if isinstance(text, bytes) or text == "" or "\0" in text:
        what = "bytes" if isinstance(text, bytes) else "empty" if not text else "holds a NUL byte"
        raise InvalidInputError(
            f"{option} {text!r} is {what}; give a str path ('.' for the current folder)"
        )
    return Path(text)


def check_flags(**flags: object) -> None:
    """Refuses options that must be True or False but are not (a truthy "False" would count)."""
    for option, value in flags.items():
        flag(option, value)


def progress_reporter(
    show: bool | TransferProgress, description: str
) -> AbstractContextManager[TransferProgress]:
    """Returns what the `show_progress` option asks for, refusing anything else.

    Raises:
        InvalidInputError: If `show` is neither a bool nor has a TransferProgress's methods.
    """
    if isinstance(show, bool):
        return ProgressBar(description) if show else nullcontext(SilentProgress())
    if not all(callable(getattr(show, method, None)) for method in _PROGRESS_METHODS):
        raise InvalidInputError(
            f"show_progress must be True, False or a TransferProgress (with "
            f"{', '.join(_PROGRESS_METHODS)}), not {type(show).__name__}"
        )
    return nullcontext(show)  # the caller's own reporter (e.g. a Prefect progress artifact)


def unusable_names(
    datastore: str, what: str, problems: dict[str, str], advice: str, *, unsafe: bool = False
) -> UnusableNamesError:
    """One error listing every name a transfer cannot use, raised before anything moves."""
    listed = sorted(problems.items())
    message = (
        f"{len(listed)} name{'s' if len(listed) != 1 else ''} {what}; nothing was transferred. "
        f"{advice[0].upper()}{advice[1:]}:" + _listed([f"{name!r}: {why}" for name, why in listed])
    )
    # An escaping name is the most serious problem: it keeps its own, more specific class.
    error_class = UnsafeBlobNameError if unsafe else UnusableNamesError
    return error_class(datastore, message, problems)


def _listed(lines: Sequence[str]) -> str:
    """The first `LISTED_PROBLEMS` lines, indented, and how many more were left out."""
    shown = "".join(f"\n  {line}" for line in lines[:LISTED_PROBLEMS])
    more = len(lines) - LISTED_PROBLEMS
    return shown + (f"\n  ... and {more} more" if more > 0 else "")
