"""The Datastore contract (himl_tasks.testing) against a folder, a blob container and a run's files.

The run-files view is what the AzureML backend reads a run's files through: the run's folder
of the workspace's artifact container seen as a datastore of its own. Another run's files sit
beside it, so the suite's `list() == []` checks also prove the view sees only its folder.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from himl_tasks.errors import ChecksumMismatchError
from himl_tasks.storage import BlobDatastore, Datastore, LocalDatastore
from himl_tasks.storage import checksum_cache as cache
from himl_tasks.storage.folder_view import FolderView
from himl_tasks.storage.pinning import file_state
from himl_tasks.testing.datastore_contract import BIG, DatastoreContract, md5
from himl_tasks.testing.files import read_tree, write_tree

OTHER_RUN = {"ExperimentRun/dcid.other_run/outputs/model.bin": b"another run's model"}


def run_files_view(store: Datastore, tmp_path: Path) -> FolderView:
    """A run's folder in an artifact store, beside another run's files."""
    store.upload_folder(write_tree(tmp_path / "other-run", OTHER_RUN))
    return FolderView(store, "ExperimentRun/dcid.contract_run", name="run contract_run")


class TestDatastores(DatastoreContract):
    @pytest.fixture(params=["folder", "blob", "run-files-view"])
    def datastore(self, request: pytest.FixtureRequest, tmp_path: Path) -> Datastore:
        if request.param == "folder":
            store: Datastore = request.getfixturevalue("local_store")
            return store
        blob: BlobDatastore = request.getfixturevalue("blob_store")
        return blob if request.param == "blob" else run_files_view(blob, tmp_path)


def test_a_run_files_view_reads_and_writes_only_its_folder(
    blob_store: BlobDatastore, tmp_path: Path
) -> None:
    view = run_files_view(blob_store, tmp_path)
    view.upload_folder(write_tree(tmp_path / "src", {"outputs/model.bin": b"this run's"}))

    assert [f.name for f in view.list()] == ["outputs/model.bin"]
    assert view.delete("outputs/").files == 1
    blob_store.download("", tmp_path / "all")
    assert read_tree(tmp_path / "all") == OTHER_RUN


def test_checksum_mismatch_raises_naming_the_file_and_leaves_nothing_behind(
    local_store: LocalDatastore, tmp_path: Path, checksum_cache: Path
) -> None:
    # The blob datastore's version of this test corrupts bytes in transit (test_blob_datastore).
    remembered = []
    for name, data in {"d/good.txt": b"good", "d/bad.bin": BIG}.items():
        path = write_tree(local_store.folder, {name: data}) / name
        # The folder datastore remembers stored files' MD5s; poison that, as bit rot would.
        wrong = md5(data) if name.endswith(".txt") else md5(b"other")
        remembered.append((str(path), file_state(path.stat()), wrong))
    cache._remember(checksum_cache, remembered)
    output = tmp_path / "out"

    with pytest.raises(ChecksumMismatchError, match=r"'d/bad\.bin'") as raised:
        local_store.download("d/", output, validate_checksum=True)

    assert raised.value.blob_name == "d/bad.bin"
    assert not (output / "d" / "bad.bin").exists()
    assert [p.name for p in output.rglob("*") if p.is_file()] in ([], ["good.txt"])
