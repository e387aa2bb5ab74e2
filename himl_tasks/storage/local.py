"""A datastore that is a folder on this machine (the local backend's default datastore)."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path, PurePath

from himl_tasks.errors import ChecksumMismatchError, ContainerNotFoundError, InvalidInputError
from himl_tasks.storage.base import Datastore, TransferSession
from himl_tasks.storage.checksum_cache import files_md5
from himl_tasks.storage.hashing import CHUNK_SIZE, new_md5
from himl_tasks.storage.models import RemoteFile
from himl_tasks.storage.names import local_target, local_write_problems
from himl_tasks.storage.options import whole_number
from himl_tasks.storage.partials import PARTIAL_SUFFIX, remove_leftovers, writing_partial
from himl_tasks.storage.progress import TransferProgress


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
        self.folder = Path(folder).absolute()
        self.name = name if name is not None else self.folder.name
        self.concurrency = whole_number("concurrency", concurrency)
        if create:
            self.folder.mkdir(parents=True, exist_ok=True)

    def __repr__(self) -> str:
        return f"LocalDatastore(name={self.name!r}, folder={str(self.folder)!r})"

    @asynccontextmanager
    async def _session(self) -> AsyncIterator[TransferSession]:
        if not self.folder.is_dir():
            raise ContainerNotFoundError(
                self.name, f"folder {self.folder} does not exist; create it or fix the path"
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
        start = self._root.joinpath(*folder_part.split("/")) if folder_part else self._root
        if not start.is_dir():
            return []
        names: dict[Path, str] = {}
        statuses: dict[Path, os.stat_result] = {}
        for directory, _, filenames in os.walk(start):
            for filename in filenames:
                if filename.endswith(PARTIAL_SUFFIX):
                    continue
                path = Path(directory, filename)
                name = path.relative_to(self._root).as_posix()
                if name.startswith(prefix):
                    names[path], statuses[path] = name, path.stat()
        # Stored files are hashed once and remembered while unchanged (see checksum_cache).
        md5s = files_md5(list(names), statuses)
        return [RemoteFile(name, statuses[p].st_size, md5s[p]) for p, name in names.items()]

    async def put(
        self, source: Path, name: str, size: int, progress: TransferProgress
    ) -> bytes | None:
        target = local_target(self._store.name, self._root, name)
        if target.parent not in self._swept:
            # Leftovers of uploads into this folder that died (see partials.py).
            self._swept.add(target.parent)
            await asyncio.to_thread(remove_leftovers, [target.parent])
        await asyncio.to_thread(_copy_atomically, source, target, None, self._store.name, name)
        progress.advance(size)
        return None  # copied without hashing

    async def get(
        self, remote: RemoteFile, destination: Path, validate: bool, progress: TransferProgress
    ) -> bool:
        source = local_target(self._store.name, self._root, remote.name)
        expected = remote.md5 if validate else None
        await asyncio.to_thread(
            _copy_hashed, source, destination, expected, self._store.name, remote.name
        )
        progress.advance(remote.size)
        return expected is not None

    async def delete(self, name: str) -> None:
        local_target(self._store.name, self._root, name).unlink(missing_ok=True)

    async def exists(self, name: str) -> bool:
        return local_target(self._store.name, self._root, name).is_file()


def _copy_atomically(
    source: Path, target: Path, expected_md5: bytes | None, datastore: str, name: str
) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    with writing_partial(target) as partial:
        _copy_hashed(source, partial, expected_md5, datastore, name)


def _copy_hashed(
    source: Path, destination: Path, expected_md5: bytes | None, datastore: str, name: str
) -> None:
    """Copies a file, checking the MD5 of what was read against `expected_md5` if given."""
    if expected_md5 is None:
        shutil.copyfile(source, destination)
        return
    digest = new_md5()
    with source.open("rb") as reader, destination.open("wb") as writer:
        while chunk := reader.read(CHUNK_SIZE):
            digest.update(chunk)
            writer.write(chunk)
    if digest.digest() != expected_md5:
        raise ChecksumMismatchError(datastore, name, expected_md5.hex(), digest.hexdigest())
