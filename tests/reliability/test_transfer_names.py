"""Names a transfer writes: every legal name goes both ways; unusable ones are refused at the plan.

Issue 11, storage items 3 and 5: names of 233-255 bytes (legal on ext4) uploaded but could not be
downloaded (the temporary name grew past 255 bytes) and the folder datastore could not even store
them; names that cannot be written (too long, a file and a folder at once, something in the way,
a non-empty name ending in '/') were found one at a time, after other files were written.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from azure.storage.blob import ContainerClient

from himl_tasks.errors import UnsafeBlobNameError, UnusableNamesError
from himl_tasks.storage import BlobDatastore, Datastore, LocalDatastore
from tests.conftest import read_tree, write_tree

LONGEST = "é" * 127 + "x"
"""255 bytes in UTF-8 (127 characters fewer): the longest file name ext4 allows."""
NEAR_LIMIT = "n" * 233
"""The shortest name whose temporary name, as it was built before, did not fit."""
assert len(os.fsencode(LONGEST)) == 255


@pytest.mark.parametrize("name", [NEAR_LIMIT, LONGEST], ids=["233-bytes", "255-bytes"])
def test_a_name_as_long_as_the_file_system_allows_goes_up_and_comes_back(
    datastore: Datastore, tmp_path: Path, name: str
) -> None:
    files = {name: b"at the root", f"sub/{name}": b"in a folder"}
    datastore.upload_folder(write_tree(tmp_path / "source", files), "d")
    assert sorted(f.name for f in datastore.list("d/")) == sorted(f"d/{n}" for n in files)

    report = datastore.download("d/", tmp_path / "out", validate_checksum=True)

    assert report.files == 2
    assert read_tree(tmp_path / "out" / "d") == files  # and no temporary file is left


def test_a_download_refuses_every_unwritable_name_at_once_and_writes_nothing(
    blob_store: BlobDatastore, container: ContainerClient, tmp_path: Path
) -> None:
    output = write_tree(tmp_path / "out", {"d/in-the-way": b"a file where a folder is needed"})
    (output / "d" / "a-folder").mkdir()
    too_long = "d/" + "x" * 256
    blobs = {
        "d/fine.txt": b"fine",
        too_long: b"a segment longer than NAME_MAX",
        "d/both": b"a file ...",
        "d/both/inner": b"... and a folder",
        "d/in-the-way/x": b"needs a folder where a file is",
        "d/a-folder": b"needs a file where a folder is",
        "d/not-a-marker/": b"a name ending in '/' that holds bytes",
        "d/marker/": b"",  # a folder marker some tools write: not a problem, skipped
    }
    for name, data in blobs.items():
        container.upload_blob(name, data)

    with pytest.raises(UnusableNamesError) as raised:
        blob_store.download("d/", output)

    error = raised.value
    assert not isinstance(error, UnsafeBlobNameError)
    assert set(error.problems) == {
        too_long,
        "d/both/inner",
        "d/in-the-way/x",
        "d/a-folder",
        "d/not-a-marker/",
    }
    assert "256 bytes" in error.problems[too_long]
    assert "'d/both' is also a file" in error.problems["d/both/inner"]
    assert "folder where the file" in error.problems["d/in-the-way/x"]
    assert "file where the folder" in error.problems["d/a-folder"]
    assert "holds 37 bytes" in error.problems["d/not-a-marker/"]
    message = str(error)
    assert "5 names cannot be downloaded" in message and "nothing was transferred" in message
    for name in error.problems:
        assert repr(name) in message
    # Nothing was written: the output holds what it held.
    assert read_tree(output) == {"d/in-the-way": b"a file where a folder is needed"}
    assert sorted(p.name for p in (output / "d").iterdir()) == ["a-folder", "in-the-way"]


def test_files_and_folders_in_the_way_are_found_before_anything_is_fetched(
    datastore: Datastore, tmp_path: Path
) -> None:
    source = write_tree(
        tmp_path / "source", {"fine.txt": b"fine", "in-the-way/x": b"x", "a-folder": b"y"}
    )
    datastore.upload_folder(source, "d")
    output = write_tree(tmp_path / "out", {"d/in-the-way": b"local file"})
    (output / "d" / "a-folder").mkdir()

    with pytest.raises(UnusableNamesError) as raised:
        datastore.download("d/", output)

    assert set(raised.value.problems) == {"d/in-the-way/x", "d/a-folder"}
    assert not (output / "d" / "fine.txt").exists()


def test_an_unsafe_name_among_others_keeps_its_class_and_all_are_listed(
    blob_store: BlobDatastore, container: ContainerClient, tmp_path: Path
) -> None:
    container.upload_blob("d//escape", b"unsafe")
    container.upload_blob("d/" + "y" * 300, b"too long")
    container.upload_blob("d/ok", b"ok")

    with pytest.raises(UnsafeBlobNameError, match="outside the folder") as raised:
        blob_store.download("d/", tmp_path / "out")

    assert set(raised.value.problems) == {"d//escape", "d/" + "y" * 300}
    assert not (tmp_path / "out").exists()


def test_an_upload_refuses_names_a_container_cannot_hold_before_sending_any(
    blob_store: BlobDatastore, tmp_path: Path
) -> None:
    control = "bell\x07.txt"
    undecodable = os.fsdecode(b"latin-1-\xe9.txt")  # bytes that are not UTF-8
    source = write_tree(
        tmp_path / "source", {"fine.txt": b"fine", control: b"c", undecodable: b"u"}
    )

    with pytest.raises(UnusableNamesError) as raised:
        blob_store.upload_folder(source, "d")

    problems = raised.value.problems
    assert not isinstance(raised.value, UnsafeBlobNameError)
    assert set(problems) == {str(source / control), str(source / undecodable)}
    assert "control character U+0007" in problems[str(source / control)]
    assert "not valid UTF-8" in problems[str(source / undecodable)]
    assert blob_store.list() == []  # nothing was sent, and the listing still works


def test_an_upload_into_a_folder_datastore_finds_its_files_in_the_way_first(
    local_store: LocalDatastore, tmp_path: Path
) -> None:
    local_store.upload_folder(write_tree(tmp_path / "first", {"a": b"a file"}), "d")
    source = write_tree(tmp_path / "second", {"a/b": b"needs 'a' as a folder", "c": b"fine"})

    with pytest.raises(UnusableNamesError) as raised:
        local_store.upload_folder(source, "d")

    problems = raised.value.problems
    assert set(problems) == {str(source / "a" / "b")}
    assert "as 'd/a/b'" in problems[str(source / "a" / "b")]
    assert "folder where the file" in problems[str(source / "a" / "b")]
    assert [f.name for f in local_store.list()] == ["d/a"]  # 'c' was not sent either
