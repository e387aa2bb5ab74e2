"""A folder of a datastore seen as a datastore of its own (names relative to the folder)."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from himl_tasks.storage.base import Datastore
from himl_tasks.storage.models import RemoteFile
from himl_tasks.storage.names import normalize_prefix
from himl_tasks.storage.progress import TransferProgress
from himl_tasks.storage.session import SentFile, TransferSession


class FolderView(Datastore):
    """The files under `folder` in `store`, named relative to that folder.

    An AzureML run's files, for example, live under `ExperimentRun/dcid.<run id>/` in the
    workspace's artifact container; a view of that folder lists and downloads them as
    `outputs/...` and `logs/...`, with all of the engine's checks.

    Args:
        store: The datastore holding the folder.
        folder: The folder ('/'-separated; a trailing '/' is added).
        name: The name used in reports and errors (default: the store's name and the folder).
    """

    def __init__(self, store: Datastore, folder: str, *, name: str | None = None) -> None:
        self.store = store
        self.folder = normalize_prefix(folder).rstrip("/") + "/"
        self.name = name if name is not None else f"{store.name}/{self.folder}"
        self.concurrency = store.concurrency

    def __repr__(self) -> str:
        return f"FolderView({self.store!r}, folder={self.folder!r})"

    @asynccontextmanager
    async def _session(self) -> AsyncIterator[TransferSession]:
        async with self.store._session() as inner:
            yield _FolderSession(inner, self.folder)


class _FolderSession(TransferSession):
    def __init__(self, inner: TransferSession, folder: str) -> None:
        self.inner = inner
        self.folder = folder

    async def list_files(self, prefix: str) -> list[RemoteFile]:
        found = await self.inner.list_files(self.folder + prefix)
        start = len(self.folder)
        return [dataclasses.replace(f, name=f.name[start:]) for f in found]

    async def put(
        self, source: Path, name: str, progress: TransferProgress, *, replace: bool = True
    ) -> SentFile:
        return await self.inner.put(source, self.folder + name, progress, replace=replace)

    async def get(
        self, remote: RemoteFile, destination: Path, validate: bool, progress: TransferProgress
    ) -> bool:
        inner_file = dataclasses.replace(remote, name=self.folder + remote.name)
        return await self.inner.get(inner_file, destination, validate, progress)

    async def delete(self, name: str) -> None:
        await self.inner.delete(self.folder + name)

    async def exists(self, name: str) -> bool:
        return await self.inner.exists(self.folder + name)

    async def write_problems(self, names: list[str]) -> dict[str, str]:
        found = await self.inner.write_problems([self.folder + name for name in names])
        start = len(self.folder)
        return {name[start:]: why for name, why in found.items()}
