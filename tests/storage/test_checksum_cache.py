"""Remembered checksums: used only while a file is provably unchanged, never a reason to fail."""

from __future__ import annotations

import hashlib
import logging
import os
import time
from pathlib import Path

import pytest
from azure.storage.blob import ContainerClient

from himl_tasks.storage import BlobDatastore
from himl_tasks.storage import checksum_cache as cache
from himl_tasks.testing.azurite import Azurite
from tests.conftest import TEST_BLOCK_SIZE, write_tree


@pytest.fixture
def hashed(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Records every file the cache reads to hash."""
    reads: list[Path] = []
    original = cache.file_md5

    def recording_md5(path: Path) -> bytes:
        reads.append(path)
        return original(path)

    monkeypatch.setattr(cache, "file_md5", recording_md5)
    return reads


@pytest.fixture
def settled_quickly(monkeypatch: pytest.MonkeyPatch) -> None:
    """Files count as settled 50 ms after their last change (2 s in real use)."""
    monkeypatch.setattr(cache, "SETTLE_SECONDS", 0.05)


def md5(data: bytes) -> bytes:
    return hashlib.md5(data).digest()


def settled_files(root: Path, files: dict[str, bytes]) -> list[Path]:
    write_tree(root, files)
    time.sleep(0.1)
    return [root / name for name in files]


@pytest.mark.usefixtures("settled_quickly")
def test_an_unchanged_file_is_read_once(tmp_path: Path, hashed: list[Path]) -> None:
    paths = settled_files(tmp_path / "data", {"a.bin": b"a" * 5000, "b.bin": b""})

    first = cache.files_md5(paths)
    second = cache.files_md5(paths)

    assert first == second == {paths[0]: md5(b"a" * 5000), paths[1]: md5(b"")}
    assert hashed == paths


@pytest.mark.usefixtures("settled_quickly")
def test_a_rewrite_that_keeps_size_and_mtime_is_still_noticed(
    tmp_path: Path, hashed: list[Path]
) -> None:
    [path] = settled_files(tmp_path / "data", {"a.txt": b"version 1"})
    cache.files_md5([path])
    before = path.stat()

    path.write_bytes(b"version 2")
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))

    assert path.stat().st_mtime_ns == before.st_mtime_ns
    assert cache.files_md5([path]) == {path: md5(b"version 2")}
    assert hashed == [path, path]


@pytest.mark.usefixtures("settled_quickly")
def test_a_file_replaced_by_another_of_the_same_size_is_noticed(tmp_path: Path) -> None:
    [path, other] = settled_files(tmp_path / "data", {"a.txt": b"one", "b.txt": b"two"})
    cache.files_md5([path])

    other.replace(path)

    assert cache.files_md5([path]) == {path: md5(b"two")}


def test_a_file_changed_moments_before_hashing_is_not_remembered(
    tmp_path: Path, hashed: list[Path]
) -> None:
    [path] = [write_tree(tmp_path / "data", {"new.txt": b"just written"}) / "new.txt"]

    cache.files_md5([path])
    cache.files_md5([path])

    assert hashed == [path, path]


@pytest.mark.usefixtures("settled_quickly")
def test_off_turns_the_cache_off(
    tmp_path: Path, hashed: list[Path], monkeypatch: pytest.MonkeyPatch, checksum_cache: Path
) -> None:
    monkeypatch.setenv("HIML_CHECKSUM_CACHE", "off")
    paths = settled_files(tmp_path / "data", {"a.txt": b"a"})

    cache.files_md5(paths)
    cache.files_md5(paths)

    assert hashed == paths * 2
    assert not checksum_cache.exists()


def test_the_default_location_is_the_user_cache_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HIML_CHECKSUM_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", "/somewhere/cache")
    assert cache.cache_path() == Path("/somewhere/cache/himl-tasks/checksums.sqlite3")


@pytest.mark.usefixtures("settled_quickly")
def test_a_damaged_cache_only_makes_hashing_uncached(
    tmp_path: Path, checksum_cache: Path, caplog: pytest.LogCaptureFixture
) -> None:
    checksum_cache.write_bytes(b"this is not a database" * 100)
    paths = settled_files(tmp_path / "data", {"a.txt": b"a", "b.txt": b"b"})

    with caplog.at_level(logging.WARNING, logger=cache.__name__):
        found = cache.files_md5(paths)

    assert found == {paths[0]: md5(b"a"), paths[1]: md5(b"b")}
    assert str(checksum_cache) in caplog.text and "HIML_CHECKSUM_CACHE=off" in caplog.text


@pytest.mark.usefixtures("settled_quickly")
@pytest.mark.parametrize("block_size", [TEST_BLOCK_SIZE, 8 * 1024 * 1024], ids=["blocks", "whole"])
def test_reupload_of_an_unchanged_folder_reads_no_local_file(
    azurite: Azurite,
    container: ContainerClient,
    tmp_path: Path,
    hashed: list[Path],
    block_size: int,
) -> None:
    store = BlobDatastore.from_connection_string(
        azurite.connection_string, container.container_name, block_size=block_size
    )
    # Small files are hashed before the upload; big ones while they are sent.
    files = {f"part{i % 3}/file{i}.bin": os.urandom(100 + i) for i in range(30)}
    files["big/one.bin"] = os.urandom(3 * 1024 * 1024 // 2)
    folder = tmp_path / "src"
    settled_files(folder, files)
    store.upload_folder(folder, "d")
    hashed.clear()

    report = store.upload_folder(folder, "d")

    assert (report.files, report.skipped_identical) == (0, len(files))
    assert hashed == []


@pytest.mark.usefixtures("settled_quickly")
def test_a_cache_held_by_another_writer_is_skipped_quietly(
    tmp_path: Path, checksum_cache: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import sqlite3

    paths = settled_files(tmp_path / "data", {"a.txt": b"a"})
    cache.files_md5(paths)  # creates the cache
    other_writer = sqlite3.connect(checksum_cache)
    other_writer.execute("BEGIN EXCLUSIVE")
    try:
        with caplog.at_level(logging.WARNING, logger=cache.__name__):
            assert cache.files_md5(paths) == {paths[0]: md5(b"a")}
    finally:
        other_writer.close()

    assert caplog.text == ""


@pytest.mark.usefixtures("settled_quickly")
def test_an_md5_computed_along_the_way_is_remembered_only_if_the_file_did_not_change(
    tmp_path: Path, hashed: list[Path]
) -> None:
    kept, changed = settled_files(tmp_path / "data", {"kept.bin": b"kept", "changed.bin": b"old"})
    reading_since = time.time_ns()
    read_as = {path: path.stat() for path in (kept, changed)}
    changed.write_bytes(b"new")  # as if written while the upload was reading it

    cache.remember_md5s(
        {kept: (read_as[kept], md5(b"kept")), changed: (read_as[changed], md5(b"old"))},
        reading_since,
    )

    assert cache.files_md5([kept, changed]) == {kept: md5(b"kept"), changed: md5(b"new")}
    assert hashed == [changed]
