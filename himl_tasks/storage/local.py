"""A datastore that is a folder on this machine (the local backend's default datastore)."""

from __future__ import annotations

import asyncio
import errno
import os
import stat
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path, PurePath

from himl_tasks.errors import ChecksumMismatchError, ContainerNotFoundError, InvalidInputError
from himl_tasks.storage.aio import to_thread_to_end
from himl_tasks.storage.base import Datastore
from himl_tasks.storage.checksum_cache import files_md5
from himl_tasks.storage.hashing import CHUNK_SIZE, new_md5
from himl_tasks.storage.local_errors import translated_local_errors
from himl_tasks.storage.models import RemoteFile
from himl_tasks.storage.names import is_unsafe, local_target, local_write_problems
from himl_tasks.storage.options import flag, whole_number
from himl_tasks.storage.partials import PARTIAL_SUFFIX, remove_leftovers, writing_partial
from himl_tasks.storage.pinning import (
    ChangedWhileReadError,
    PinnedReader,
    file_identity,
    file_version,
)
from himl_tasks.storage.progress import TransferProgress
from himl_tasks.storage.session import SentFile, TransferSession


class LocalDatastore(Datastore):
    """A folder used as a datastore: file names are paths relative to the folder.

    The folder holds no MD5 metadata: MD5s are computed when listed (and remembered while a
    file's size and modification time stay the same).

    Args:
        folder: The datastore's root folder. It must exist unless `create` is True.
        name: The datastore's name in reports and errors (default: the folder's name).
        create: Create the folder if it is missing.
        concurrency: Files copied at once (at least 1).

    Raises:
        InvalidInputError: If `concurrency` is not a whole number of at least 1.
    """

    def __init__(
        self,
        folder: str | PurePath,
        *,
        name: str | None = None,
        create: bool = False,
        concurrency: int = 8,
    ) -> None:
        if not isinstance(folder, (str, os.PathLike)):
            raise InvalidInputError(
                f"a folder datastore needs a folder (a str or path), not {type(folder).__name__}"
            )
        text = os.fspath(folder)
        if not isinstance(text, str) or not text or "\0" in text:
            raise InvalidInputError(
                f"a folder datastore needs a folder path, not {text!r}; give a non-empty str "
                "path without NUL bytes ('.' for the current folder)"
            )
        if name is not None and not isinstance(name, str):
            raise InvalidInputError(f"a datastore's name must be a str, not {type(name).__name__}")
        self.folder = Path(text).absolute()
        self.name = name if name is not None else self.folder.name
        self.concurrency = whole_number("concurrency", concurrency)
        if flag("create", create):
            with translated_local_errors(self.name):
                if self.folder.exists() and not self.folder.is_dir():
                    raise InvalidInputError(
                        f"cannot use {self.folder} as a folder datastore: it is a file; give "
                        "a folder"
                    )
                self.folder.mkdir(parents=True, exist_ok=True)

    def __repr__(self) -> str:
        return f"LocalDatastore(name={self.name!r}, folder={str(self.folder)!r})"

    @asynccontextmanager
    async def _session(self) -> AsyncIterator[TransferSession]:
        if not self.folder.is_dir():
            what = "is a file, not a folder" if self.folder.exists() else "does not exist"
            raise ContainerNotFoundError(
                self.name, f"folder {self.folder} {what}; create it or fix the path"
            )
        yield _LocalSession(self)


class _LocalSession(TransferSession):
    def __init__(self, store: LocalDatastore) -> None:
        self._store = store
        self._root = store.folder
        self._swept: set[Path] = set()

    async def write_problems(self, names: list[str]) -> dict[str, str]:
        return await asyncio.to_thread(local_write_problems, self._root, names)

    async def list_files(self, prefix: str) -> list[RemoteFile]:
        return await asyncio.to_thread(self._list_sync, prefix)

    def _list_sync(self, prefix: str) -> list[RemoteFile]:
        # Walk only below the deepest folder the prefix names.
        folder_part = prefix.rpartition("/")[0]
        if folder_part and is_unsafe(folder_part):
            # ('..', '.' or empty segments): no stored name has them, and walking there would
            # list files outside the datastore's folder.
            return []
        start = self._root.joinpath(*folder_part.split("/")) if folder_part else self._root
        if not _is_folder(start):
            return []
        names: dict[Path, str] = {}
        statuses: dict[Path, os.stat_result] = {}
        # Linked folders are part of the datastore, whatever the prefix: else a file under one
        # is listed with the prefix "data/" but not with "", and an upload that did not see it
        # would replace it without `overwrite`. A link back to a folder above is walked once.
        walked: set[tuple[int, int]] = set()
        for directory, folders, filenames in os.walk(start, followlinks=True):
            try:
                folder_status = Path(directory).stat()
            except OSError:
                folders.clear()
                continue
            if file_identity(folder_status) in walked:
                folders.clear()
                continue
            walked.add(file_identity(folder_status))
            for filename in filenames:
                if filename.endswith(PARTIAL_SUFFIX):
                    continue
                path = Path(directory, filename)
                name = path.relative_to(self._root).as_posix()
                if name.startswith(prefix) and (status := _regular_file(path)) is not None:
                    names[path], statuses[path] = name, status
        # Stored files are hashed once and remembered while unchanged (see checksum_cache).
        md5s = files_md5(list(names), statuses)
        return [
            RemoteFile(name, statuses[p].st_size, md5s[p], file_version(statuses[p]))
            for p, name in names.items()
        ]

    async def put(
        self, source: Path, name: str, progress: TransferProgress, *, replace: bool = True
    ) -> SentFile:
        # Copied under a temporary name and renamed only once the copy is known to be one
        # state of the source: a torn copy is never published.
        target = local_target(self._store.name, self._root, name)
        if target.parent not in self._swept:
            # Leftovers of uploads into this folder that died (see partials.py).
            self._swept.add(target.parent)
            await asyncio.to_thread(remove_leftovers, [target.parent])
        await asyncio.to_thread(target.parent.mkdir, parents=True, exist_ok=True)
        with writing_partial(target, replace=replace) as partial:
            copied = await _copy_one_state(source, None, partial, False, progress)
        return SentFile(copied.status)

    async def get(
        self, remote: RemoteFile, destination: Path, validate: bool, progress: TransferProgress
    ) -> bool:
        source = local_target(self._store.name, self._root, remote.name)
        expected = remote.md5 if validate else None
        copied = await _copy_one_state(
            source, remote.version, destination, expected is not None, progress
        )
        if copied.status.st_size != remote.size:
            # Only without a listed version: the file read is not the one listed.
            raise ChangedWhileReadError(
                f"its size changed from {remote.size} to {copied.status.st_size} bytes"
            )
        if expected is not None and copied.md5 != expected:
            raise ChecksumMismatchError(
                self._store.name, remote.name, expected.hex(), (copied.md5 or b"").hex()
            )
        return expected is not None

    async def delete(self, name: str) -> None:
        local_target(self._store.name, self._root, name).unlink(missing_ok=True)

    async def exists(self, name: str) -> bool:
        if is_unsafe(name):
            return False  # no such name is ever stored (uploads refuse it), as in a container
        try:
            return local_target(self._store.name, self._root, name).is_file()
        except OSError as error:
            if error.errno == errno.ENAMETOOLONG:
                return False  # too long to be stored in this folder
            raise


def _is_folder(path: Path) -> bool:
    try:
        return path.is_dir()
    except OSError as error:
        if error.errno == errno.ENAMETOOLONG:
            return False  # a prefix naming a folder too long to exist here
        raise


def _regular_file(path: Path) -> os.stat_result | None:
    """Returns a listed entry's stat fields if it is a regular file (or a link to one).

    A fifo would make hashing it wait for a writer forever, a device has no end, and a broken
    link or a file removed since the walk has nothing to read: none of them is a stored file.
    """
    try:
        status = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        return None
    return status if stat.S_ISREG(status.st_mode) else None


async def _copy_one_state(
    source: Path, version: str | None, destination: Path, hashed: bool, progress: TransferProgress
) -> _PinnedCopy:
    """Copies one state of `source` to `destination`, chunk by chunk, counting progress.

    Raises:
        ChangedWhileReadError: If `source` is not at `version` (when given) or changes while copied;
            `destination` then holds bytes to throw away.
    """
    copy = _PinnedCopy(source, version, destination, hashed)
    try:
        while not copy.done:
            progress.advance(await to_thread_to_end(copy.step))
    finally:
        copy.close()
    return copy


class _PinnedCopy:
    """A copy of one state of a file, made one chunk per `step` (each in a worker thread)."""

    def __init__(self, source: Path, version: str | None, destination: Path, hashed: bool):
        self._source = source
        self._version = version
        self._destination = destination
        self._digest = new_md5() if hashed else None
        self._reader: PinnedReader | None = None
        self._writer = -1
        self.done = False

    @property
    def status(self) -> os.stat_result:
        """The source's stat fields while it was copied (once opened)."""
        if self._reader is None:
            raise AssertionError("the copy has not started")
        return self._reader.status

    @property
    def md5(self) -> bytes | None:
        """The MD5 of the bytes copied, if asked for."""
        return self._digest.digest() if self._digest is not None else None

    def step(self) -> int:
        """Copies the next chunk (opening the files first); returns the bytes copied."""
        if self._reader is None:
            self._reader = PinnedReader(self._source, self._version)
            flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0)
            self._writer = os.open(self._destination, flags, 0o666)
        reader = self._reader
        if self._digest is None:
            copied = reader.copy_to(self._writer, CHUNK_SIZE)
        else:
            data = reader.read(CHUNK_SIZE)
            self._digest.update(data)
            view = memoryview(data)
            while view:
                view = view[os.write(self._writer, view) :]
            copied = len(data)
        if not reader.remaining:
            reader.finish()
            self.done = True
        return copied

    def close(self) -> None:
        """Closes both files (idempotent)."""
        if self._reader is not None:
            self._reader.close()
        if self._writer >= 0:
            os.close(self._writer)
            self._writer = -1
