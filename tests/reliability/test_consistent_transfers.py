"""Files that change while they are transferred: one state of a file moves, or nothing does.

Another writer changes a file at a chosen moment of a transfer, not in a race: a progress
reporter runs the change when the plan is made (between listing and reading) or when the first
block or chunk has moved (in the middle of reading). The writer is a real one: the Azure SDK
replacing a blob in Azurite, or a plain file write on disk.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from azure.storage.blob import ContainerClient

from himl_tasks.errors import RemoteFileChangedError, SourceChangedError, StorageError
from himl_tasks.storage import BlobDatastore, Datastore, LocalDatastore, RemoteFile
from himl_tasks.storage.base import PARTIAL_SUFFIX
from himl_tasks.storage.hashing import CHUNK_SIZE
from himl_tasks.storage.pinning import ATTEMPTS, ChangedWhileReadError
from himl_tasks.storage.progress import SilentProgress
from tests.conftest import TEST_BLOCK_SIZE, read_tree


def md5(data: bytes) -> bytes:
    return hashlib.md5(data).digest()


class Hooked(SilentProgress):
    """A progress reporter that lets a test act at a chosen moment of a transfer.

    Args:
        on_start: Runs once the plan is made: after the listing, before any file is read.
        on_advance: Runs each time bytes have moved, with the count of calls so far (1 after
            the first block or chunk).
    """

    def __init__(
        self,
        on_start: Callable[[], object] | None = None,
        on_advance: Callable[[int], object] | None = None,
    ) -> None:
        self.on_start = on_start
        self.on_advance = on_advance
        self.advances = 0

    def start(self, files: int, total_bytes: int) -> None:
        if self.on_start is not None:
            self.on_start()

    def advance(self, nbytes: int) -> None:
        self.advances += 1
        if self.on_advance is not None:
            self.on_advance(self.advances)


def at_first(action: Callable[[], object]) -> Callable[[int], None]:
    """An `on_advance` hook that acts once: after the first block or chunk has moved."""

    def hook(advances: int) -> None:
        if advances == 1:
            action()

    return hook


@dataclass
class StoredFiles:
    """Writes a datastore's files behind its back, as another process would.

    A blob is replaced (another client's upload); a folder datastore's file is rewritten in
    place (same inode, truncated and written), which is what tears a copy being read.

    Attributes:
        chunk: Bytes a datastore moves per request or chunk.
        chunks: How many make a file that is still being read after the first one has moved:
            a blob's first eight ranges are fetched at once, a folder file's chunks one by one.
    """

    datastore: Datastore
    container: ContainerClient | None
    chunk: int
    chunks: int

    def big(self, extra: int) -> bytes:
        """Random bytes that are read in several steps, changes between which are seen."""
        return os.urandom(self.chunks * self.chunk + extra)

    def write(self, name: str, data: bytes) -> None:
        if isinstance(self.datastore, LocalDatastore):
            path = self.datastore.folder.joinpath(*name.split("/"))
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        else:
            assert self.container is not None
            self.container.upload_blob(name, data, overwrite=True)


@pytest.fixture
def stored(datastore: Datastore, request: pytest.FixtureRequest) -> StoredFiles:
    if isinstance(datastore, LocalDatastore):
        return StoredFiles(datastore, None, CHUNK_SIZE, 2)
    return StoredFiles(datastore, request.getfixturevalue("container"), TEST_BLOCK_SIZE, 12)


def leftovers(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.name.endswith(PARTIAL_SUFFIX)]


# ---- downloads: pinned to the version listed -------------------------------------------------


@pytest.mark.parametrize("validate", [False, True], ids=["unvalidated", "validated"])
def test_a_file_replaced_in_the_middle_of_its_download_is_fetched_again_whole(
    datastore: Datastore, stored: StoredFiles, tmp_path: Path, validate: bool
) -> None:
    first = stored.big(777)
    second = stored.big(-55)
    stored.write("d/big.bin", first)
    changer = Hooked(on_advance=at_first(lambda: stored.write("d/big.bin", second)))

    report = datastore.download(
        "d/", tmp_path / "out", validate_checksum=validate, show_progress=changer
    )

    assert read_tree(tmp_path / "out") == {"d/big.bin": second}
    assert (report.files, report.bytes, report.unverified) == (1, len(second), [])
    assert leftovers(tmp_path / "out") == []


@pytest.mark.parametrize("first_size", ["one chunk", "several chunks"])
def test_a_file_replaced_between_listing_and_reading_is_read_and_reported_as_it_is_now(
    datastore: Datastore, stored: StoredFiles, tmp_path: Path, first_size: str
) -> None:
    first = os.urandom(4321) if first_size == "one chunk" else stored.big(4321)
    second = os.urandom(1234)
    stored.write("d/f.bin", first)
    changer = Hooked(on_start=lambda: stored.write("d/f.bin", second))

    report = datastore.download(
        "d/", tmp_path / "out", validate_checksum=True, show_progress=changer
    )

    # Never written or checked under the listing's old size and MD5, never reported with them.
    assert read_tree(tmp_path / "out") == {"d/f.bin": second}
    assert (report.files, report.bytes, report.unverified) == (1, len(second), [])


def test_a_file_that_keeps_changing_while_it_is_downloaded_fails_and_writes_nothing(
    datastore: Datastore, stored: StoredFiles, tmp_path: Path
) -> None:
    stored.write("d/busy.bin", stored.big(1))
    stored.write("d/quiet.txt", b"quiet")
    out = tmp_path / "out"
    (out / "d").mkdir(parents=True)
    (out / "d" / "busy.bin").write_bytes(b"the local copy from before")
    versions: list[bytes] = []

    def write_another_version(_: int) -> None:
        versions.append(stored.big(len(versions) + 2))
        stored.write("d/busy.bin", versions[-1])

    with pytest.raises(RemoteFileChangedError) as raised:
        datastore.download(
            "d/busy.bin",
            out,
            overwrite=True,
            show_progress=Hooked(on_advance=write_another_version),
        )

    assert isinstance(raised.value, StorageError)
    assert (raised.value.name, raised.value.attempts) == ("d/busy.bin", ATTEMPTS)
    message = str(raised.value)
    assert "'d/busy.bin' changed while it was read" in message
    assert "nothing was written" in message
    assert "damaged" not in message  # the stored copy is not to blame
    assert read_tree(out) == {"d/busy.bin": b"the local copy from before"}
    assert leftovers(out) == []


def test_a_blob_entry_without_a_version_is_pinned_to_the_version_first_read(
    blob_store: BlobDatastore, container: ContainerClient, tmp_path: Path
) -> None:
    # A RemoteFile made by hand (no ETag): the first range's answer names the version.
    first = os.urandom(12 * TEST_BLOCK_SIZE + 3)
    second = os.urandom(len(first))
    container.upload_blob("d/big.bin", first)
    changer = Hooked(
        on_advance=at_first(lambda: container.upload_blob("d/big.bin", second, overwrite=True))
    )
    partial = tmp_path / "partial.bin"

    async def read_once() -> None:
        async with blob_store._session() as session:
            await session.get(RemoteFile("d/big.bin", len(first)), partial, False, changer)

    with pytest.raises(ChangedWhileReadError):
        asyncio.run(read_once())


# ---- uploads: one state of the source, or nothing ----------------------------------------------


def truncate(path: Path) -> None:
    with path.open("r+b") as file:
        file.truncate(path.stat().st_size // 3)


def extend(path: Path) -> None:
    with path.open("ab") as file:
        file.write(os.urandom(5000))


def rewrite_in_place(path: Path) -> None:
    path.write_bytes(os.urandom(path.stat().st_size))


@pytest.mark.parametrize("change", [truncate, extend, rewrite_in_place])
def test_a_source_changed_in_the_middle_of_its_upload_is_sent_again_as_it_is_now(
    datastore: Datastore,
    stored: StoredFiles,
    tmp_path: Path,
    change: Callable[[Path], None],
) -> None:
    source = tmp_path / "src" / "big.bin"
    source.parent.mkdir()
    source.write_bytes(stored.big(777))
    changer = Hooked(on_advance=at_first(lambda: change(source)))

    report = datastore.upload_files([source], "d", show_progress=changer)

    now = source.read_bytes()
    datastore.download("d/", tmp_path / "out")
    assert read_tree(tmp_path / "out") == {"d/big.bin": now}
    assert (report.files, report.bytes) == (1, len(now))
    assert [(f.name, f.size, f.md5) for f in datastore.list("d/")] == [
        ("d/big.bin", len(now), md5(now))
    ]
    # No MD5 of bytes read across the change was remembered: the file is found identical.
    again = datastore.upload_files([source], "d", overwrite=True)
    assert (again.files, again.skipped_identical) == (0, 1)


def test_a_source_changed_between_planning_and_sending_is_reported_as_sent(
    datastore: Datastore, tmp_path: Path
) -> None:
    source = tmp_path / "src" / "f.txt"
    source.parent.mkdir()
    source.write_bytes(b"planned with this content")
    changer = Hooked(on_start=lambda: source.write_bytes(b"sent with this"))

    report = datastore.upload_folder(source.parent, "d", show_progress=changer)

    assert (report.files, report.bytes) == (1, len(b"sent with this"))
    assert [(f.name, f.size, f.md5) for f in datastore.list("d/")] == [
        ("d/f.txt", 14, md5(b"sent with this"))
    ]


def test_a_source_that_keeps_changing_fails_naming_it_and_stores_nothing(
    datastore: Datastore, stored: StoredFiles, tmp_path: Path
) -> None:
    source = tmp_path / "src" / "log.bin"
    source.parent.mkdir()
    source.write_bytes(b"the stored copy from before")
    datastore.upload_files([source], "d")
    source.write_bytes(stored.big(1))

    def append(_: int) -> None:
        with source.open("ab") as file:
            file.write(b"another line\n")

    with pytest.raises(SourceChangedError) as raised:
        datastore.upload_files(
            [source], "d", overwrite=True, show_progress=Hooked(on_advance=append)
        )

    assert isinstance(raised.value, StorageError)
    assert (raised.value.path, raised.value.name) == (source, "d/log.bin")
    assert raised.value.attempts == ATTEMPTS
    assert f"cannot upload {source} as 'd/log.bin': it changed while it was read" in str(
        raised.value
    )
    datastore.download("d/", tmp_path / "out")
    assert read_tree(tmp_path / "out") == {"d/log.bin": b"the stored copy from before"}
    if isinstance(datastore, LocalDatastore):
        assert leftovers(datastore.folder) == []
