"""The primitives one datastore implements: a `TransferSession`, and what its `put` stored.

Kept apart from the engine (`base`) so that the per-file steps (`one_file`) and each
implementation import the primitives without importing the engine built on them.
"""

from __future__ import annotations

import abc
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

    from himl_tasks.storage.models import RemoteFile
    from himl_tasks.storage.progress import TransferProgress


@dataclass(frozen=True)
class SentFile:
    """What `TransferSession.put` stored.

    Attributes:
        status: The local file's stat fields while it was read: every byte stored is of this
            state of the file.
        md5: The MD5 of the bytes sent, if it was computed on the way; else None.
    """

    status: os.stat_result
    md5: bytes | None = None

    @property
    def size(self) -> int:
        """Bytes stored."""
        return self.status.st_size


class TransferSession(abc.ABC):
    """The primitives one datastore provides, valid while its session is open."""

    @abc.abstractmethod
    async def list_files(self, prefix: str) -> list[RemoteFile]:
        """Lists files whose names start with `prefix` (any order)."""

    @abc.abstractmethod
    async def put(
        self, source: Path, name: str, progress: TransferProgress, *, replace: bool = True
    ) -> SentFile:
        """Stores a local file under `name` with its MD5, replacing what is there, atomically.

        What is stored is one state of the file (see `pinning`): if the file changes while it
        is read, nothing is stored and `ChangedWhileReadError` is raised.

        Args:
            source: The local file.
            name: Its name in the datastore.
            progress: Told of the bytes sent.
            replace: Replace a file stored under `name`. If False, one stored there meanwhile
                (by another writer, after the plan) is kept, atomically.

        Returns:
            The state of the file that was stored, with the MD5 of its bytes if computed.

        Raises:
            ChangedWhileReadError: If the file changed while it was read (the engine sends it
                again).
            DestinationTakenError: If not `replace` and a file is stored under `name`.
        """

    @abc.abstractmethod
    async def get(
        self, remote: RemoteFile, destination: Path, validate: bool, progress: TransferProgress
    ) -> bool:
        """Writes a file's bytes to `destination` (a temporary name the engine renames).

        The bytes are those of the version listed (`remote.version`, else the one first seen);
        if that version is replaced while it is read, `ChangedWhileReadError` is raised.

        Returns:
            True if the bytes were checked against a stored MD5 (only when `validate`).

        Raises:
            ChecksumMismatchError: If `validate` and the bytes do not match the stored MD5.
            ChangedWhileReadError: If the file is not, or is no longer, the version listed (the
                engine lists it again and fetches it again).
        """

    @abc.abstractmethod
    async def delete(self, name: str) -> None:
        """Deletes one file; a missing one is not an error."""

    @abc.abstractmethod
    async def exists(self, name: str) -> bool:
        """Tells whether a file of exactly this name exists."""

    async def write_problems(self, names: list[str]) -> dict[str, str]:
        """Says why some names cannot be stored here, beyond what every datastore refuses.

        A folder, for example, cannot hold a name longer than its file system allows, nor a
        file where it holds a folder. Called while planning an upload, before anything is sent.

        Returns:
            {name: why} for each name that cannot be stored; by default none.
        """
        return {}
