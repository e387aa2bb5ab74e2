"""Putting a dataset's files into a folder never removes a folder that is not a stale copy."""

from __future__ import annotations

from pathlib import Path

import pytest

from himl_tasks.backends.dataset_folders import download_dataset, link_dataset
from himl_tasks.errors import InvalidInputError
from himl_tasks.storage import LocalDatastore
from tests.conftest import read_tree, write_tree

FILES = {"scans/1/a.txt": b"1", "scans/1/sub/b.txt": b"2", "other/c.txt": b"3"}


@pytest.fixture
def store(tmp_path: Path) -> LocalDatastore:
    return LocalDatastore(write_tree(tmp_path / "parent" / "datastore", FILES))


@pytest.mark.parametrize(
    "where",
    ["datastore", "parent", "dataset", "inside-dataset"],
)
def test_a_link_is_never_made_in_place_of_the_datastore_or_a_folder_that_holds_it(
    store: LocalDatastore, where: str
) -> None:
    destination = {
        "datastore": store.folder,
        "parent": store.folder.parent,
        "dataset": store.folder / "scans/1",
        "inside-dataset": store.folder / "scans/1/sub",
    }[where]

    with pytest.raises(InvalidInputError, match="datastore"):
        link_dataset(store, "scans/1", destination)

    assert read_tree(store.folder) == FILES


def test_a_link_is_not_made_in_place_of_a_folder_that_holds_files(
    store: LocalDatastore, tmp_path: Path
) -> None:
    mine = write_tree(tmp_path / "mine", {"notes.txt": b"my work"})

    with pytest.raises(InvalidInputError, match="holds files"):
        link_dataset(store, "scans/1", mine)

    assert read_tree(mine) == {"notes.txt": b"my work"}


def test_a_link_replaces_an_empty_folder_or_an_earlier_link(
    store: LocalDatastore, tmp_path: Path
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    assert read_tree(link_dataset(store, "scans/1", empty)) == {"a.txt": b"1", "sub/b.txt": b"2"}
    assert read_tree(link_dataset(store, "other", empty)) == {"c.txt": b"3"}
    assert read_tree(store.folder) == FILES


def test_a_download_is_never_written_into_the_datastore(
    store: LocalDatastore, tmp_path: Path
) -> None:
    for destination in (store.folder, store.folder.parent, store.folder / "other"):
        with pytest.raises(InvalidInputError, match="datastore"):
            download_dataset(store, "scans/1", destination)
    assert read_tree(store.folder) == FILES


def test_a_destination_written_with_dots_or_through_a_link_is_still_seen_as_the_datastore(
    store: LocalDatastore, tmp_path: Path
) -> None:
    alias = tmp_path / "alias"
    alias.symlink_to(store.folder.parent, target_is_directory=True)
    for destination in (store.folder / "scans" / "..", alias / "datastore"):
        with pytest.raises(InvalidInputError, match="datastore"):
            link_dataset(store, "scans/1", destination)
    assert read_tree(store.folder) == FILES


def test_a_link_is_not_made_in_place_of_a_file(store: LocalDatastore, tmp_path: Path) -> None:
    mine = tmp_path / "notes.txt"
    mine.write_bytes(b"my work")

    with pytest.raises(InvalidInputError, match="is a file"):
        link_dataset(store, "scans/1", mine)

    assert mine.read_bytes() == b"my work"


def test_a_link_where_none_can_be_made_is_the_caller_s_error(store: LocalDatastore) -> None:
    # /proc takes no new entries: the folder asked for cannot be made, however often it is tried.
    with pytest.raises(InvalidInputError, match="cannot make /proc/himl-test"):
        link_dataset(store, "scans/1", Path("/proc/himl-test"))
