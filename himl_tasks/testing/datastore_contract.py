"""The Datastore contract: tests every Datastore implementation passes.

As fsspec ships its abstract tests, this suite ships with the package: a module of a project's
tests subclasses `DatastoreContract` and provides the `datastore` fixture, and pytest collects
every test of the suite against it. This project runs it against a folder, an Azure Blob
container (on Azurite) and a folder of either seen through `FolderView` (a run's files).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from pathlib import Path

import pytest

from himl_tasks.errors import InvalidInputError, RemoteFilesNotFoundError
from himl_tasks.storage import Datastore
from himl_tasks.storage import checksum_cache as cache
from himl_tasks.testing.files import read_tree, write_tree

TEST_BLOCK_SIZE = 64 * 1024
"""The block size to make a datastore under test with, where it has one: small, so that
multi-block uploads and ranged downloads run on small test files."""

# Bigger than the test block size, and not a multiple of it: sent in blocks, fetched in ranges.
BIG = os.urandom(5 * TEST_BLOCK_SIZE + 12345)


def md5(data: bytes) -> bytes:
    """The MD5 digest of `data`, as datastores keep it."""
    return hashlib.md5(data).digest()


ODD_NAMES = {
    "a b.txt": b"space",
    "ünï/çødé.txt": b"unicode",
    "plus+eq=amp&.txt": b"query characters",
    "percent%20.txt": b"a literal percent",
    "hash#question?.txt": b"fragment and query marks",
    "semi;comma,colon:.txt": b"separators",
}


class DatastoreContract:
    """The tests every Datastore passes; a subclass provides the `datastore` fixture.

    The fixture gives an empty datastore (made with `TEST_BLOCK_SIZE` where blocks apply); the
    tests write into it and read it back.
    """

    @pytest.fixture
    def datastore(self) -> Datastore:
        """An empty datastore: override this fixture in the subclass."""
        raise NotImplementedError("a DatastoreContract subclass provides the datastore fixture")

    @pytest.fixture(autouse=True)
    def own_checksum_cache(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """Each test remembers file checksums in its own cache, never in the user's."""
        monkeypatch.setenv(cache.ENVIRONMENT_VARIABLE, str(tmp_path / "checksum-cache.sqlite3"))

    def test_upload_folder_puts_files_under_remote_path_without_the_folder_name(
        self, datastore: Datastore, tmp_path: Path
    ) -> None:
        folder = write_tree(tmp_path / "foo" / "bar", {"1.txt": b"one", "a/2.txt": b"two"})

        report = datastore.upload_folder(folder, "baz")

        assert [(f.name, f.size) for f in datastore.list()] == [
            ("baz/1.txt", 3),
            ("baz/a/2.txt", 3),
        ]
        assert (report.files, report.bytes, report.skipped) == (2, 6, 0)

    def test_every_uploaded_file_carries_its_md5_also_when_sent_in_blocks(
        self, datastore: Datastore, tmp_path: Path
    ) -> None:
        files = {"small.bin": b"x" * 100, "big.bin": BIG, "empty.bin": b""}
        datastore.upload_folder(write_tree(tmp_path / "src", files), "data")

        stored = {f.name: f.md5 for f in datastore.list("data/")}

        assert stored == {f"data/{name}": md5(data) for name, data in files.items()}

    def test_names_with_spaces_unicode_and_url_characters_round_trip(
        self, datastore: Datastore, tmp_path: Path
    ) -> None:
        datastore.upload_folder(write_tree(tmp_path / "src", ODD_NAMES), "odd dir")

        listed = sorted(f.name for f in datastore.list("odd dir/"))
        datastore.download("odd dir/", tmp_path / "out", validate_checksum=True)

        assert listed == sorted(f"odd dir/{name}" for name in ODD_NAMES)
        assert read_tree(tmp_path / "out") == {f"odd dir/{k}": v for k, v in ODD_NAMES.items()}
        assert datastore.exists("odd dir/percent%20.txt")
        assert not datastore.exists("odd dir/percent .txt")
        assert datastore.delete("odd dir/ünï/").files == 1
        assert len(datastore.list("odd dir/")) == len(ODD_NAMES) - 1

    def test_upload_without_overwrite_keeps_existing_remote_files(
        self, datastore: Datastore, tmp_path: Path
    ) -> None:
        datastore.upload_folder(
            write_tree(tmp_path / "v1", {"a.txt": b"old", "b.txt": b"same"}), "d"
        )
        changed = write_tree(tmp_path / "v2", {"a.txt": b"new!", "b.txt": b"same", "c.txt": b"c"})

        report = datastore.upload_folder(changed, "d")

        assert (report.files, report.skipped_existing, report.skipped_identical) == (1, 1, 1)
        datastore.download("d/", tmp_path / "out")
        assert read_tree(tmp_path / "out") == {
            "d/a.txt": b"old",
            "d/b.txt": b"same",
            "d/c.txt": b"c",
        }

    def test_upload_with_overwrite_replaces_changed_files_and_skips_identical_ones(
        self, datastore: Datastore, tmp_path: Path
    ) -> None:
        datastore.upload_folder(
            write_tree(tmp_path / "v1", {"a.txt": b"old", "b.txt": b"same"}), "d"
        )
        changed = write_tree(tmp_path / "v2", {"a.txt": b"new!", "b.txt": b"same"})

        report = datastore.upload_folder(changed, "d", overwrite=True)

        assert (report.files, report.bytes, report.skipped_identical) == (1, 4, 1)
        assert {f.name: f.size for f in datastore.list("d/")} == {"d/a.txt": 4, "d/b.txt": 4}

    def test_reupload_of_an_unchanged_folder_sends_nothing(
        self, datastore: Datastore, tmp_path: Path
    ) -> None:
        folder = write_tree(tmp_path / "src", {f"f{i}.txt": f"{i}".encode() for i in range(20)})
        datastore.upload_folder(folder, "d")

        again = datastore.upload_folder(folder, "d", overwrite=True)
        forced = datastore.upload_folder(folder, "d", overwrite=True, skip_identical=False)

        assert (again.files, again.skipped_identical) == (0, 20)
        assert (forced.files, forced.skipped_identical) == (20, 0)

    def test_reupload_sends_a_file_rewritten_with_its_size_and_mtime_unchanged(
        self, datastore: Datastore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(cache, "SETTLE_SECONDS", 0.05)
        folder = write_tree(tmp_path / "src", {"a.txt": b"version 1", "b.txt": b"same"})
        time.sleep(0.1)  # let the files settle, so that their checksums are remembered
        datastore.upload_folder(folder, "d")
        before = (folder / "a.txt").stat()

        (folder / "a.txt").write_bytes(b"version 2")
        os.utime(folder / "a.txt", ns=(before.st_atime_ns, before.st_mtime_ns))
        report = datastore.upload_folder(folder, "d", overwrite=True)

        assert (report.files, report.skipped_identical) == (1, 1)
        datastore.download("d/", tmp_path / "out")
        assert read_tree(tmp_path / "out") == {"d/a.txt": b"version 2", "d/b.txt": b"same"}

    def test_download_keeps_full_names_under_the_output_folder(
        self, datastore: Datastore, tmp_path: Path
    ) -> None:
        src = write_tree(tmp_path / "src", {"1.txt": b"1", "2.txt": b"2", "other.txt": b"o"})
        datastore.upload_folder(src, "foo/bar")
        output = tmp_path / "created" / "outputs"

        report = datastore.download("foo/bar/", output)

        assert read_tree(output) == {
            "foo/bar/1.txt": b"1",
            "foo/bar/2.txt": b"2",
            "foo/bar/other.txt": b"o",
        }
        assert report.files == 3

    def test_download_prefix_is_a_plain_string_prefix_and_can_name_one_file(
        self, datastore: Datastore, tmp_path: Path
    ) -> None:
        datastore.upload_folder(
            write_tree(tmp_path / "src", {"1.txt": b"1", "10.txt": b"10", "2.txt": b"2"}), "foo"
        )

        datastore.download("foo/1", tmp_path / "prefix")
        datastore.download("foo/2.txt", tmp_path / "single")

        assert sorted(read_tree(tmp_path / "prefix")) == ["foo/1.txt", "foo/10.txt"]
        assert read_tree(tmp_path / "single") == {"foo/2.txt": b"2"}

    def test_download_round_trips_big_files_with_checksums(
        self, datastore: Datastore, tmp_path: Path
    ) -> None:
        datastore.upload_folder(write_tree(tmp_path / "src", {"big.bin": BIG}), "m")

        report = datastore.download("m/big.bin", tmp_path / "out", validate_checksum=True)

        assert (tmp_path / "out" / "m" / "big.bin").read_bytes() == BIG
        assert (report.files, report.bytes, report.unverified) == (1, len(BIG), [])

    def test_download_without_overwrite_keeps_existing_local_files(
        self, datastore: Datastore, tmp_path: Path
    ) -> None:
        datastore.upload_folder(
            write_tree(tmp_path / "src", {"a.txt": b"remote", "b.txt": b"b"}), "d"
        )
        output = write_tree(tmp_path / "out", {"d/a.txt": b"local edit"})

        kept = datastore.download("d/", output)
        assert (output / "d" / "a.txt").read_bytes() == b"local edit"
        assert (kept.files, kept.skipped_existing) == (1, 1)

        replaced = datastore.download("d/", output, overwrite=True)
        assert (output / "d" / "a.txt").read_bytes() == b"remote"
        assert (replaced.files, replaced.skipped_identical) == (1, 1)

    def test_list_exists_and_delete(self, datastore: Datastore, tmp_path: Path) -> None:
        datastore.upload_folder(write_tree(tmp_path / "s", {"a/1": b"1", "a/2": b"2", "b/3": b"3"}))

        assert datastore.exists("a/1")
        assert not datastore.exists("a")
        assert [f.name for f in datastore.list("a/")] == ["a/1", "a/2"]

        report = datastore.delete("a/")

        assert report.files == 2
        assert [f.name for f in datastore.list()] == ["b/3"]
        with pytest.raises(InvalidInputError, match="empty prefix"):
            datastore.delete("")

    def test_upload_files_keeps_paths_relative_to_the_root(
        self, datastore: Datastore, tmp_path: Path
    ) -> None:
        root = write_tree(tmp_path / "r", {"x/1.txt": b"1", "y/1.txt": b"other 1"})

        datastore.upload_files(
            [root / "x" / "1.txt", root / "y" / "1.txt"], "up", relative_root=root
        )
        datastore.upload_files([root / "x" / "1.txt"], "flat")

        assert [f.name for f in datastore.list()] == ["flat/1.txt", "up/x/1.txt", "up/y/1.txt"]
        with pytest.raises(InvalidInputError, match=r"would both be uploaded as '1\.txt'"):
            datastore.upload_files([root / "x" / "1.txt", root / "y" / "1.txt"], "flat")

    def test_the_sync_api_works_inside_a_running_event_loop(
        self, datastore: Datastore, tmp_path: Path
    ) -> None:
        folder = write_tree(tmp_path / "s", {"a.txt": b"a"})

        async def caller() -> int:
            return datastore.upload_folder(folder, "loop").files

        assert asyncio.run(caller()) == 1

    # ---- bad input: one clear error, nothing written ------------------------------------

    def test_upload_of_a_missing_folder(self, datastore: Datastore, tmp_path: Path) -> None:
        with pytest.raises(InvalidInputError, match="no such folder"):
            datastore.upload_folder(tmp_path / "nope", "d")

    def test_upload_of_a_file_instead_of_a_folder(
        self, datastore: Datastore, tmp_path: Path
    ) -> None:
        file = write_tree(tmp_path, {"f.txt": b"x"}) / "f.txt"
        with pytest.raises(InvalidInputError, match="it is a file, not a folder"):
            datastore.upload_folder(file, "d")
        assert datastore.list() == []

    def test_upload_of_an_empty_folder(self, datastore: Datastore, tmp_path: Path) -> None:
        (tmp_path / "empty" / "sub").mkdir(parents=True)
        with pytest.raises(InvalidInputError, match="holds no files"):
            datastore.upload_folder(tmp_path / "empty", "d")

    def test_download_of_a_prefix_that_matches_nothing(
        self, datastore: Datastore, tmp_path: Path
    ) -> None:
        with pytest.raises(RemoteFilesNotFoundError, match="no file name starts with 'nothing/'"):
            datastore.download("nothing/", tmp_path / "out")
        assert not (tmp_path / "out").exists()

        report = datastore.download("nothing/", tmp_path / "out", missing_ok=True)
        assert (report.files, report.skipped) == (0, 0)

    def test_download_into_a_file(self, datastore: Datastore, tmp_path: Path) -> None:
        datastore.upload_folder(write_tree(tmp_path / "s", {"a.txt": b"a"}), "d")
        target = write_tree(tmp_path, {"taken": b"keep me"}) / "taken"

        with pytest.raises(InvalidInputError, match="it is a file"):
            datastore.download("d/", target)
        assert target.read_bytes() == b"keep me"

    @pytest.mark.parametrize("remote_path", ["../up", "a/../../b", "a\\b"])
    def test_upload_to_a_remote_path_outside_the_datastore(
        self, datastore: Datastore, tmp_path: Path, remote_path: str
    ) -> None:
        with pytest.raises(InvalidInputError, match="remote path"):
            datastore.upload_folder(write_tree(tmp_path / "s", {"a": b"a"}), remote_path)
        assert datastore.list() == []
