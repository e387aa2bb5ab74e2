"""Translating the operating system's errors about local files into `himl_tasks.errors`.

The engine calls `local_file_error` at its boundaries (each file it sends or fetches, and each
public operation as a whole), so that a disk that is full, a file removed meanwhile or a folder
without permission reach the caller as one `LocalFileError` naming the path, the cause and what
to do; it is also the matching builtin (FileNotFoundError, PermissionError, ...).
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator
from pathlib import Path

from himl_tasks.errors import (
    HimlError,
    LocalFileError,
    LocalFileNotFoundError,
    LocalIsADirectoryError,
    LocalNotADirectoryError,
    LocalPermissionError,
)
from himl_tasks.storage.partials import is_partial_name

_ADVICE = {
    errno.ENOSPC: "the disk is full: free space and run the transfer again",
    errno.EDQUOT: "the disk quota is used up: free space and run the transfer again",
    errno.ENAMETOOLONG: "a name or the path is too long for the file system: use a shorter "
    "destination folder or shorter names",
    errno.ELOOP: "symbolic links loop or nest too deeply: fix or remove the links",
    errno.EROFS: "the file system is read-only: choose a writable folder",
    errno.EACCES: "check the permissions of the file and its folders",
    errno.EPERM: "check the permissions of the file and its folders",
    errno.ENOENT: "it was removed or renamed while the transfer ran: run the transfer again",
    errno.ENOTDIR: "a file stands where a folder is needed: move it away",
    errno.EISDIR: "a folder stands where a file is needed: move it away",
    errno.EIO: "the disk reported an input/output error: check the disk",
    errno.EFBIG: "the file is bigger than this process may write (ulimit -f) or the file "
    "system allows",
}


def local_file_error(
    datastore: str, error: OSError, path: Path | str | None = None, context: str = ""
) -> LocalFileError:
    """Builds the `LocalFileError` (subclass) that stands for an OSError about a local file.

    Args:
        datastore: The datastore's name, for the message.
        error: The OS error.
        path: The file concerned, when the error does not name it (writes, for example).
        context: What the transfer was doing, e.g. "uploading 'a/b.txt'".

    Returns:
        The error to raise (`raise local_file_error(...) from error`).
    """
    named = [os.fsdecode(n) for n in (error.filename, error.filename2) if n is not None]
    if path is not None:
        # A temporary name means nothing to the caller: name the file it stands for.
        named = [os.fsdecode(path) if is_partial_name(Path(n).name) else n for n in named]
        named = named or [os.fsdecode(path)]
    where_text = " -> ".join(dict.fromkeys(named)) if named else "a local file"
    cause = error.strerror or type(error).__name__
    code = errno.errorcode.get(error.errno, "") if error.errno is not None else ""
    advice = _ADVICE.get(error.errno, "") if error.errno is not None else ""
    message = (
        f"{context + ': ' if context else ''}{where_text}: {cause}"
        + (f" ({code})" if code else "")
        + (f"; {advice}" if advice else "")
    )
    return _error_class(error)(datastore, where_text, message, error.errno)


@contextlib.contextmanager
def translated_local_errors(datastore: str) -> Iterator[None]:
    """Turns an OSError escaping the block into a `LocalFileError`; himl errors pass as they are."""
    try:
        yield
    except HimlError:
        raise
    except OSError as error:
        raise local_file_error(datastore, error) from error


def _error_class(error: OSError) -> type[LocalFileError]:
    if isinstance(error, FileNotFoundError):
        return LocalFileNotFoundError
    if isinstance(error, PermissionError):
        return LocalPermissionError
    if isinstance(error, NotADirectoryError):
        return LocalNotADirectoryError
    if isinstance(error, IsADirectoryError):
        return LocalIsADirectoryError
    return LocalFileError
