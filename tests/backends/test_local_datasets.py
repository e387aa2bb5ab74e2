"""Datasets in and out of local runs: versions, download, mount, target_folder, outputs."""

from __future__ import annotations

from pathlib import Path

import pytest
from azure.storage.blob import ContainerClient

from himl_tasks.backends.local.backend import LocalBackend
from himl_tasks.backends.local.read_only import read_only_mounts_available
from himl_tasks.datasets import DatasetConfig
from himl_tasks.errors import (
    ConfigurationError,
    DatasetNotFoundError,
    DatastoreNotFoundError,
    InvalidInputError,
)
from himl_tasks.job_spec import JobSpec
from himl_tasks.runs import FailureKind, RunStatus
from himl_tasks.testing.azurite import Azurite
from tests.backends.conftest import write_script
from tests.conftest import read_tree, write_tree

# Reads every file of input dataset 0 and writes "name=content" lines to outputs/seen.txt.
READER = """
from pathlib import Path
from himl_tasks.runtime import get_run_info

info = get_run_info()
folder = info.input_datasets[0]
lines = [f"{p.relative_to(folder).as_posix()}={p.read_text()}"
         for p in sorted(folder.rglob("*")) if p.is_file()]
(info.output_folder / "seen.txt").write_text("\\n".join(lines))
(info.output_folder / "where.txt").write_text(str(folder))
"""


def put_folder(backend: LocalBackend, name: str, files: dict[str, bytes], tmp: Path) -> None:
    backend.datastore().upload_folder(write_tree(tmp / f"src-{name}", files), name)


def run_reader(backend: LocalBackend, project: Path, *inputs: DatasetConfig) -> tuple[str, Path]:
    write_script(project, "read.py", READER)
    ref = backend.submit(
        JobSpec(entry_script="read.py", snapshot_root=project, input_datasets=list(inputs))
    )
    state = backend.wait(ref)
    assert state.succeeded, state.error
    outputs = backend.registry.get_run(ref.run_id).run_dir / "snapshot/outputs"  # type: ignore[union-attr]
    return (outputs / "seen.txt").read_text(), Path((outputs / "where.txt").read_text())


def test_a_folder_in_the_datastore_becomes_version_1_and_is_downloaded(
    backend: LocalBackend, project: Path, tmp_path: Path
) -> None:
    put_folder(backend, "raw", {"a.txt": b"1", "sub/b.txt": b"2"}, tmp_path)

    seen, where = run_reader(backend, project, DatasetConfig("raw"))

    assert seen == "a.txt=1\nsub/b.txt=2"
    assert not where.exists()  # the downloaded copy is removed with the run's staging area
    [version] = backend.dataset_versions("raw")
    assert (version["version"], version["path"], version["created_by_run"]) == (1, "raw", None)


def test_the_latest_version_is_used_unless_a_version_is_named(
    backend: LocalBackend, project: Path, tmp_path: Path
) -> None:
    put_folder(backend, "raw", {"a.txt": b"old"}, tmp_path)
    assert backend.resolve_dataset(DatasetConfig("raw")).version == 1
    put_folder(backend, "raw_v2", {"a.txt": b"new"}, tmp_path)
    second = backend.register_dataset("raw", "", "raw_v2")

    assert second.version == 2
    assert run_reader(backend, project, DatasetConfig("raw"))[0] == "a.txt=new"
    assert run_reader(backend, project, DatasetConfig("raw", version=1))[0] == "a.txt=old"


def test_mounting_a_folder_datastore_reads_the_files_in_place(
    backend: LocalBackend, project: Path, tmp_path: Path
) -> None:
    put_folder(backend, "images", {"x.png": b"px"}, tmp_path)
    folder_store = backend.datastore()

    seen, where = run_reader(backend, project, DatasetConfig("images", use_mounting=True))

    assert seen == "x.png=px"
    assert where == folder_store.folder / "images"  # type: ignore[attr-defined]


def test_a_mounted_input_is_read_only_for_the_job(
    backend: LocalBackend, project: Path, tmp_path: Path
) -> None:
    put_folder(backend, "images", {"x.png": b"px"}, tmp_path)
    write_script(
        project,
        "vandal.py",
        """
        from himl_tasks.runtime import get_run_info
        (get_run_info().input_datasets[0] / "x.png").write_bytes(b"overwritten")
        """,
    )
    spec = JobSpec(
        entry_script="vandal.py",
        snapshot_root=project,
        input_datasets=[DatasetConfig("images", use_mounting=True)],
    )

    state = backend.wait(backend.submit(spec))

    folder = backend.datastore().folder / "images"  # type: ignore[attr-defined]
    if read_only_mounts_available():
        assert state.status is RunStatus.FAILED
        assert "Read-only file system" in state.error
        assert (folder / "x.png").read_bytes() == b"px"
    else:  # the documented fallback: the folder stays writable and the log says so
        assert "NOT read-only on this machine" in "\n".join(backend.iter_logs(state.ref))


@pytest.mark.parametrize("use_mounting", [False, True])
def test_target_folder_is_where_the_job_finds_the_data(
    backend: LocalBackend, project: Path, tmp_path: Path, use_mounting: bool
) -> None:
    put_folder(backend, "mnist", {"train.csv": b"1,2"}, tmp_path)
    target = tmp_path / "fixed" / "mnist"

    seen, where = run_reader(
        backend, project, DatasetConfig("mnist", target_folder=target, use_mounting=use_mounting)
    )

    assert (seen, where) == ("train.csv=1,2", target)
    assert (target / "train.csv").read_bytes() == b"1,2"


def test_a_completed_run_registers_its_output_dataset_as_a_new_version(
    backend: LocalBackend, project: Path, tmp_path: Path
) -> None:
    put_folder(backend, "raw", {"a.txt": b"abc"}, tmp_path)
    write_script(
        project,
        "upper.py",
        """
        from himl_tasks.runtime import get_run_info
        info = get_run_info()
        source, target = info.input_datasets[0], info.output_datasets[0]
        (target / "a.txt").write_text((source / "a.txt").read_text().upper())
        """,
    )
    spec = JobSpec(
        entry_script="upper.py", snapshot_root=project, input_datasets=["raw"],
        output_datasets=["clean"],
    )  # fmt: skip

    first, second = backend.submit(spec), backend.submit(spec)
    assert backend.wait(first).succeeded and backend.wait(second).succeeded

    versions = backend.dataset_versions("clean")
    assert [(v["version"], v["path"]) for v in versions] == sorted(
        [(v["version"], f"clean/{v['created_by_run']}") for v in versions]
    )
    assert {v["created_by_run"] for v in versions} == {first.run_id, second.run_id}
    resolved = backend.resolve_dataset(DatasetConfig("clean", version=1))
    out = tmp_path / "out"
    backend.datastore().download(resolved.path, out)
    assert read_tree(out) == {f"{resolved.path}/a.txt": b"ABC"}


def test_a_failed_run_registers_nothing_and_leaves_no_files(
    backend: LocalBackend, project: Path
) -> None:
    write_script(
        project,
        "half.py",
        """
        from himl_tasks.runtime import get_run_info
        (get_run_info().output_datasets[0] / "part.txt").write_text("half")
        raise SystemExit("crashed after writing half the dataset")
        """,
    )
    ref = backend.submit(
        JobSpec(entry_script="half.py", snapshot_root=project, output_datasets=["clean"])
    )

    state = backend.wait(ref)

    assert state.status is RunStatus.FAILED
    assert backend.dataset_versions("clean") == []
    assert backend.datastore().list("clean") == []
    with pytest.raises(DatasetNotFoundError):
        backend.resolve_dataset(DatasetConfig("clean"))


def test_an_output_dataset_left_empty_fails_the_run_and_registers_nothing(
    backend: LocalBackend, project: Path
) -> None:
    write_script(project, "noop.py", "pass\n")
    ref = backend.submit(
        JobSpec(entry_script="noop.py", snapshot_root=project, output_datasets=["clean"])
    )

    state = backend.wait(ref)

    assert state.status is RunStatus.FAILED
    assert "wrote no files into output dataset clean" in state.error
    assert backend.dataset_versions("clean") == []


def test_bad_dataset_inputs_get_one_clear_error_before_anything_runs(
    backend: LocalBackend, project: Path, tmp_path: Path
) -> None:
    write_script(project, "read.py", READER)
    put_folder(backend, "raw", {"a.txt": b"1"}, tmp_path)
    backend.resolve_dataset(DatasetConfig("raw"))

    def submit(*inputs: DatasetConfig | str) -> None:
        backend.submit(
            JobSpec(entry_script="read.py", snapshot_root=project, input_datasets=inputs)
        )

    with pytest.raises(DatasetNotFoundError, match="no dataset named 'nope'.*Known datasets: raw"):
        submit("nope")
    with pytest.raises(DatasetNotFoundError, match="'raw' has no version 7; its versions are 1"):
        submit(DatasetConfig("raw", version=7))
    with pytest.raises(InvalidInputError, match="target_folder must be an absolute path"):
        submit(DatasetConfig("raw", target_folder=Path("relative/place")))
    with pytest.raises(DatastoreNotFoundError, match="'elsewhere'"):
        submit(DatasetConfig("other", datastore="elsewhere"))
    with pytest.raises(InvalidInputError, match="no files under 'missing'"):
        backend.register_dataset("raw", "", "missing")
    assert backend.registry.runs() == []
    assert [v["version"] for v in backend.dataset_versions("raw")] == [1]


def test_blob_datastores_registered_by_name_serve_inputs_and_outputs(
    backend: LocalBackend,
    project: Path,
    tmp_path: Path,
    azurite: Azurite,
    container: ContainerClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LAKE_CONNECTION_STRING", azurite.connection_string)
    lake = backend.register_datastore(
        "lake",
        account_url=azurite.account_url,
        container=container.container_name,
        connection_string_env="LAKE_CONNECTION_STRING",
    )
    lake.upload_folder(write_tree(tmp_path / "src", {"a.txt": b"blob data"}), "raw")
    write_script(
        project,
        "copy_data.py",
        """
        import shutil
        from himl_tasks.runtime import get_run_info
        info = get_run_info()
        shutil.copytree(info.input_datasets[0], info.output_datasets[0], dirs_exist_ok=True)
        """,
    )
    spec = JobSpec(
        entry_script="copy_data.py",
        snapshot_root=project,
        # Mounting a blob datastore falls back to a download.
        input_datasets=[DatasetConfig("raw", datastore="lake", use_mounting=True)],
        output_datasets=[DatasetConfig("copied", datastore="lake")],
    )

    ref = backend.submit(spec)
    assert backend.wait(ref).succeeded

    [version] = backend.dataset_versions("copied")
    assert (version["datastore"], version["path"]) == ("lake", f"copied/{ref.run_id}")
    assert [f.name for f in lake.list("copied/")] == [f"copied/{ref.run_id}/a.txt"]
    assert "LAKE_CONNECTION_STRING" in backend.registry.path.read_bytes().decode("latin-1")
    assert azurite.account_key not in backend.registry.path.read_bytes().decode("latin-1")


def test_incomplete_datastore_settings_are_refused(backend: LocalBackend) -> None:
    with pytest.raises(ConfigurationError, match="exactly one of"):
        backend.register_datastore("lake", account_url="https://a", container="c")
    with pytest.raises(InvalidInputError, match="not a usable datastore name"):
        backend.register_datastore("my lake", path="x")
    assert backend.registry.datastores() == {}


# ---- a script outside any job: Backend.local_dataset_folder ---------------------------------


def test_outside_a_job_local_folder_wins_else_the_version_is_downloaded_with_checksums(
    backend: LocalBackend, tmp_path: Path
) -> None:
    put_folder(backend, "scans", {"a.txt": b"1", "sub/b.txt": b"2"}, tmp_path)
    mine = tmp_path / "mine"
    assert backend.local_dataset_folder(DatasetConfig("scans", local_folder=mine)) == mine
    assert not mine.exists()  # nothing was fetched for it

    target = tmp_path / "target"
    folder = backend.local_dataset_folder(DatasetConfig("scans", target_folder=target))
    assert folder == target
    assert read_tree(folder) == {"a.txt": b"1", "sub/b.txt": b"2"}


def test_outside_a_job_mounting_a_folder_datastore_hands_the_files_over_in_place(
    backend: LocalBackend, tmp_path: Path
) -> None:
    put_folder(backend, "scans", {"a.txt": b"1"}, tmp_path)
    destination = tmp_path / "mounted"
    folder = backend.local_dataset_folder(DatasetConfig("scans", use_mounting=True), destination)
    assert folder.is_symlink() and read_tree(folder) == {"a.txt": b"1"}
    # Downloading later into the same folder replaces the link: the datastore is not written.
    backend.local_dataset_folder(DatasetConfig("scans"), destination)
    assert not destination.is_symlink()
    (destination / "a.txt").write_bytes(b"changed locally")
    assert backend.datastore().list("scans/")[0].size == 1


def test_a_dataset_fetched_into_a_folder_that_holds_an_older_copy_has_the_version_s_files(
    backend: LocalBackend, tmp_path: Path
) -> None:
    store = backend.datastore()
    store.upload_folder(write_tree(tmp_path / "v1", {"a.txt": b"one", "b.txt": b"1"}), "scans")
    target = tmp_path / "scans-here"
    config = DatasetConfig("scans", target_folder=target)
    assert read_tree(backend.local_dataset_folder(config)) == {"a.txt": b"one", "b.txt": b"1"}
    store.upload_folder(write_tree(tmp_path / "v2", {"a.txt": b"second"}), "scans_v2")
    backend.register_dataset("scans", "", "scans_v2")

    folder = backend.local_dataset_folder(config)  # the latest: version 2, into the same folder

    assert folder == target
    assert read_tree(folder)["a.txt"] == b"second"
    assert read_tree(backend.local_dataset_folder(DatasetConfig("scans", version=1), target)) == {
        "a.txt": b"one",
        "b.txt": b"1",
    }


def test_a_version_asked_of_a_dataset_that_is_only_a_folder_is_explained(
    backend: LocalBackend, tmp_path: Path
) -> None:
    backend.datastore().upload_folder(write_tree(tmp_path / "src", {"a.txt": b"x"}), "scans")

    with pytest.raises(DatasetNotFoundError, match="folder 'scans/'.*becomes version 1"):
        backend.resolve_dataset(DatasetConfig("scans", version=2))


def test_an_input_the_spec_asks_to_put_where_it_cannot_go_fails_the_run_as_the_user_s_error(
    backend: LocalBackend, project: Path, tmp_path: Path
) -> None:
    # Submitting again cannot help: the target folder holds the user's files, which stay.
    put_folder(backend, "images", {"a.png": b"1"}, tmp_path)
    mine = write_tree(tmp_path / "mine", {"notes.txt": b"my work"})
    write_script(project, "read.py", READER)
    spec = JobSpec(
        entry_script="read.py",
        snapshot_root=project,
        input_datasets=[DatasetConfig("images", use_mounting=True, target_folder=mine)],
    )

    state = backend.wait(backend.submit(spec))

    assert state.failure_kind is FailureKind.USER_ERROR, state.error
    assert "holds files" in state.error
    assert read_tree(mine) == {"notes.txt": b"my work"}
