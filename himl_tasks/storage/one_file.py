"""Moving one file: one state of it, sent or fetched again from scratch when it changes.

The engine in `base` plans a transfer and then runs each file through here: `put_one_state`
stores one state of a local file, `get_one_state` writes one version of a datastore file (under
a temporary name, renamed when complete), each trying at most `ATTEMPTS` times; `one_file` is
the boundary of each file, where a destination taken since the plan is counted as kept and the
local file system's errors are translated.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from himl_tasks.errors import HimlError, RemoteFileChangedError, SourceChangedError
from himl_tasks.storage.local_errors import local_file_error
from himl_tasks.storage.models import RemoteFile, TransferReport
from himl_tasks.storage.partials import DestinationTakenError, writing_partial
from himl_tasks.storage.pinning import ATTEMPTS, ChangedWhileReadError
from himl_tasks.storage.progress import TransferProgress

if TYPE_CHECKING:
    from himl_tasks.storage.session import SentFile, TransferSession

T = TypeVar("T")


async def one_file(
    transfer: Awaitable[T],
    datastore: str,
    path: Path,
    context: Callable[[], str],
    report: TransferReport,
    progress: TransferProgress,
) -> T | None:
    """Runs one file's transfer: the boundary where its local OS errors are translated.

    Args:
        transfer: Sends or fetches the file.
        datastore: The datastore's name, for errors.
        path: The local file, named in errors.
        context: Says what was being done, asked only when an error is raised (it may
            mention the progress made by then).
        report: Counts the file in `skipped_existing` if another writer took its destination.
        progress: Told the file is done when it is skipped.

    Returns:
        What `transfer` returned, or None if the destination was taken since the plan (the
        file was then kept, as without overwrite).
    """
    try:
        return await transfer
    except DestinationTakenError:
        report.skipped_existing += 1
        progress.file_done()
        return None
    except HimlError:
        raise
    except OSError as error:
        raise local_file_error(datastore, error, path, context()) from error


async def put_one_state(
    session: TransferSession,
    datastore: str,
    path: Path,
    name: str,
    progress: TransferProgress,
    *,
    replace: bool,
) -> SentFile:
    """Stores one state of a local file, sending it again (from scratch) when it changes."""
    for attempt in range(1, ATTEMPTS + 1):
        try:
            return await session.put(path, name, progress, replace=replace)
        except ChangedWhileReadError as changed:
            if attempt == ATTEMPTS:
                raise SourceChangedError(datastore, path, name, attempt, changed.detail) from None
    raise AssertionError("unreachable")  # pragma: no cover


async def get_one_state(
    session: TransferSession,
    datastore: str,
    remote: RemoteFile,
    target: Path,
    validate: bool,
    progress: TransferProgress,
    *,
    replace: bool,
) -> tuple[RemoteFile, bool]:
    """Writes one version of a datastore file to `target`, fetching it again when it changes.

    Unless `replace`, a file that appeared at `target` meanwhile is kept
    (`DestinationTakenError`).

    Returns:
        The listing entry of the version written (a newer one than `remote` if it changed),
        and whether its bytes were checked against its stored MD5.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    for attempt in range(1, ATTEMPTS + 1):
        # Each attempt starts from scratch, into a fresh temporary file (removed on any error).
        try:
            with writing_partial(target, replace=replace) as partial:
                verified = await session.get(remote, partial, validate, progress)
            return remote, verified
        except ChangedWhileReadError as changed:
            remote = await _listed_again(session, datastore, remote, attempt, changed)
    raise AssertionError("unreachable")  # pragma: no cover


async def _listed_again(
    session: TransferSession,
    datastore: str,
    remote: RemoteFile,
    attempt: int,
    changed: ChangedWhileReadError,
) -> RemoteFile:
    """Returns the file's current listing entry after it changed while it was read.

    The earlier entry's size, MD5 and version describe a state that is gone; the next attempt
    reads, checks and reports the current one.

    Raises:
        RemoteFileChangedError: If this was the last attempt, or the file is gone.
    """
    if attempt == ATTEMPTS:
        raise RemoteFileChangedError(datastore, remote.name, attempt, changed.detail) from None
    for current in await session.list_files(remote.name):
        if current.name == remote.name:
            return current
    raise RemoteFileChangedError(
        datastore, remote.name, attempt, f"{changed.detail}; then it was deleted"
    ) from None
