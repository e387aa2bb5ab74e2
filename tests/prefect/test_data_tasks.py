"""The data tasks against a real Prefect API, a real local workspace and real local jobs."""

from __future__ import annotations

from pathlib import Path

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from himl_tasks.backends.local.backend import LocalBackend
from himl_tasks.datasets import ResolvedDataset
from himl_tasks.prefect import (
    download_datastore_files,
    download_run_checkpoints,
    download_run_files,
    ensure_dataset,
    submit_job,
    upload_folder_to_datastore,
)
from himl_tasks.storage import TransferReport
from tests.conftest import read_tree, write_tree
from tests.prefect.conftest import epochs_spec


def test_data_tasks_upload_and_ensure_a_dataset(
    workspace: tuple[str, LocalBackend], tmp_path: Path
) -> None:
    block, _ = workspace
    write_tree(tmp_path / "raw", {"a.txt": b"a", "b/c.txt": b"c"})

    @flow
    def data() -> tuple[TransferReport, TransferReport, ResolvedDataset]:
        first = upload_folder_to_datastore(block, "", tmp_path / "raw", "scans")
        again = upload_folder_to_datastore(block, "", tmp_path / "raw", "scans")
        return first, again, ensure_dataset(block, "scans")

    first, again, dataset = data()
    assert isinstance(first, TransferReport) and first.operation == "upload"
    assert (first.files, again.files, again.skipped_identical) == (2, 0, 2)
    assert isinstance(dataset, ResolvedDataset)
    assert (dataset.uri, dataset.path) == ("scans:1", "scans")


def test_typed_results_travel_between_tasks_as_values_and_futures(
    workspace: tuple[str, LocalBackend], tmp_path: Path
) -> None:
    block, _ = workspace
    write_tree(tmp_path / "raw", {"a.txt": b"a", "b/c.txt": b"cc"})

    @task(cache_policy=NO_CACHE)
    def describe(report: TransferReport, dataset: ResolvedDataset) -> str:
        return f"{report.operation} {report.files} files {report.bytes} B, then {dataset.uri}"

    @flow
    def chained() -> tuple[str, str]:
        report = upload_folder_to_datastore(block, "", tmp_path / "raw", "scans")
        dataset = ensure_dataset(block, "scans")
        direct = describe(report, dataset)
        later = describe.submit(
            download_datastore_files.submit(block, "", "scans/", tmp_path / "copy"),
            ensure_dataset.submit(block, "scans"),
        )
        return direct, later.result()

    direct, later = chained()
    assert direct == "upload 2 files 3 B, then scans:1"
    assert later == "download 2 files 3 B, then scans:1"
    assert read_tree(tmp_path / "copy") == {"scans/a.txt": b"a", "scans/b/c.txt": b"cc"}


def test_a_runs_files_and_checkpoints_download_as_typed_values(
    workspace: tuple[str, LocalBackend], project: Path, tmp_path: Path
) -> None:
    block, backend = workspace

    @flow
    def fetch() -> tuple[TransferReport, Path]:
        run = submit_job(block, epochs_spec(project, 2, 0))
        assert backend.wait(run, timeout=60).succeeded
        files = download_run_files(block, run, "outputs/", tmp_path / "files")
        folder = download_run_checkpoints(block, run.recovery_id, tmp_path / "ckpt")
        return files, folder

    files, folder = fetch()
    assert isinstance(files, TransferReport) and files.files == 2 and not files.unverified
    assert folder == tmp_path / "ckpt" / "outputs" / "checkpoints"
    assert sorted(p.name for p in folder.iterdir()) == [
        "recovery_epoch=0.ckpt",
        "recovery_epoch=1.ckpt",
    ]
