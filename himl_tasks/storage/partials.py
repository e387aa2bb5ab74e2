"""Temporary ("partial") files: where a file is written until complete, and their leftovers.

A file being written lives beside its final name under a hidden temporary name of fixed length,
so that every name the file system allows can be written (a temporary name built by adding to
the final name would not fit when the final name is near the limit of 255 bytes).

The writer holds an exclusive `flock` on its partial file for the file's whole life. The kernel
drops that lock when the writer's process ends, however it ends (SIGKILL included), so a later
transfer into the same folder can tell a leftover of a dead transfer (it can take the lock) from
the partial file of a live one (it cannot) and removes only the former.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import secrets
from collections.abc import Iterable, Iterator
from pathlib import Path

from himl_tasks.storage.pinning import file_identity

PARTIAL_SUFFIX = ".himl-partial"
"""Files being written carry this suffix until complete; listings never show them."""

_NAME_HASH_CHARS = 16
_RANDOM_CHARS = 16
PARTIAL_NAME_BYTES = 1 + _NAME_HASH_CHARS + _RANDOM_CHARS + len(PARTIAL_SUFFIX)
"""The length of every temporary name (46 bytes), whatever the final name."""


def partial_path(target: Path) -> Path:
    """Returns a hidden temporary name beside `target`, of fixed length whatever its name.

    The name holds a hash of the final name (to tell, when looking at a folder, which partial
    belongs to which file) and randomness (so concurrent writers of one name never share one).
    """
    digest = hashlib.sha256(os.fsencode(target.name)).hexdigest()[:_NAME_HASH_CHARS]
    token = secrets.token_hex(_RANDOM_CHARS // 2)
    return target.with_name(f".{digest}{token}{PARTIAL_SUFFIX}")


class DestinationTakenError(Exception):
    """A file appeared where a transfer without `overwrite` was to write, after it was planned.

    The engine counts the file as skipped (it exists); this never reaches a caller.
    """


def is_partial_name(name: str) -> bool:
    """Tells whether a file name is a temporary name (of this or of an earlier release)."""
    return name.startswith(".") and name.endswith(PARTIAL_SUFFIX)


@contextlib.contextmanager
def writing_partial(target: Path, *, replace: bool = True) -> Iterator[Path]:
    """Gives a locked, empty temporary file beside `target`; renames it to `target` on success.

    On any error (or cancellation) the temporary file is removed and `target` is untouched.
    The lock is held until the rename is done, so no sweep takes the file for a leftover.

    Args:
        target: The file's final name.
        replace: Replace a file of that name. If False, a file that appeared there meanwhile
            (another writer's) is kept: the new one is linked in only if the name is free.

    Yields:
        The temporary file's path; write it by path (open it, truncate it, replace its bytes).

    Raises:
        DestinationTakenError: If not `replace` and `target` exists by the end.
    """
    partial, descriptor = _create_locked(target)
    try:
        yield partial
        if replace:
            partial.replace(target)
        else:
            _publish_unless_taken(partial, target)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    finally:
        os.close(descriptor)


def _publish_unless_taken(partial: Path, target: Path) -> None:
    # A hard link is made only if the name is free, in one step (a rename would replace).
    try:
        os.link(partial, target, follow_symlinks=False)
    except FileExistsError:
        raise DestinationTakenError(str(target)) from None
    except OSError as error:
        if error.errno not in _NO_HARD_LINKS:
            raise
        # A file system without hard links: check, then rename (a narrow race remains).
        if os.path.lexists(target):
            raise DestinationTakenError(str(target)) from None
        partial.replace(target)
        return
    partial.unlink()


_NO_HARD_LINKS = frozenset(
    {errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EMLINK, errno.EXDEV}
)


def _create_locked(target: Path) -> tuple[Path, int]:
    while True:
        partial = partial_path(target)
        descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX)
            # A sweep may have taken the file for a leftover between its creation and our lock
            # (it takes the lock, then removes the name): then make another one.
            if _same_file(descriptor, partial):
                return partial, descriptor
        except BaseException:
            os.close(descriptor)
            raise
        os.close(descriptor)


def remove_leftovers(folders: Iterable[Path]) -> list[Path]:
    """Removes partial files in `folders` (not below) whose writer is no longer alive.

    A partial file whose lock can be taken has no living writer; one that is locked belongs to
    a transfer still running (in this process or another) and is left alone. Folders that do
    not exist are skipped.

    Returns:
        The partial files removed.
    """
    removed: list[Path] = []
    for folder in folders:
        try:
            entries = list(os.scandir(folder))
        except (FileNotFoundError, NotADirectoryError):
            continue
        for entry in entries:
            if (
                is_partial_name(entry.name)
                and entry.is_file(follow_symlinks=False)
                and _remove_if_abandoned(Path(entry.path))
            ):
                removed.append(Path(entry.path))
    return removed


def _remove_if_abandoned(path: Path) -> bool:
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return False  # gone meanwhile, or not ours to open
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                return False  # a live writer holds it
            raise
        # Removed only while locked, and only if the name still is this file.
        if not _same_file(descriptor, path):
            return False
        path.unlink(missing_ok=True)
        return True
    finally:
        os.close(descriptor)


def _same_file(descriptor: int, path: Path) -> bool:
    try:
        on_disk = os.lstat(path)
    except FileNotFoundError:
        return False
    opened = os.fstat(descriptor)
    return file_identity(on_disk) == file_identity(opened)
