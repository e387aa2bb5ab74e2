"""The in-job API outside any run, and recovery ids."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest

from himl_tasks.backends.local.backend import LocalBackend
from himl_tasks.datasets import DatasetConfig
from himl_tasks.errors import DatasetNotFoundError, InvalidInputError, RunNotFoundError
from himl_tasks.job_spec import JobSpec
from himl_tasks.runs import get_most_recent_run, split_recovery_id
from himl_tasks.runtime import (
    find_latest_recovery_checkpoint,
    get_run_info,
    is_local_rank_zero,
    log_metric,
    set_environment_variables_for_multi_node,
    torch_barrier,
)
from tests.backends.conftest import write_script
from tests.conftest import read_tree, write_tree


def test_outside_a_run_local_folders_are_used_and_outputs_created(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.chdir(tmp_path)
    caplog.set_level(logging.INFO, logger="himl_tasks.runtime")

    info = get_run_info(
        input_datasets=[DatasetConfig("raw", local_folder=tmp_path / "raw"), "other"],
        output_datasets=["out"],
    )
    log_metric("loss", 0.5, step=3)
    torch_barrier()

    assert info.input_datasets == [tmp_path / "raw", None]
    assert info.output_datasets == [None]
    assert info.output_folder == tmp_path / "outputs" and info.output_folder.is_dir()
    assert info.logs_folder == tmp_path / "logs" and info.logs_folder.is_dir()
    assert info.run is None and not info.is_running_in_azure_ml
    assert "metrics (step 3): {'loss': 0.5}" in caplog.text


def test_ranks_and_multi_node_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "NODE_RANK"):
        monkeypatch.delenv(name, raising=False)
    assert is_local_rank_zero()
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert not is_local_rank_zero()

    monkeypatch.setenv("AZ_BATCH_MASTER_NODE", "10.0.0.4:6000")
    monkeypatch.setenv("OMPI_COMM_WORLD_RANK", "2")
    set_environment_variables_for_multi_node()

    import os

    assert (os.environ["MASTER_ADDR"], os.environ["NODE_RANK"]) == ("10.0.0.4", "2")


def test_the_latest_recovery_checkpoint_is_the_highest_epoch(tmp_path: Path) -> None:
    assert find_latest_recovery_checkpoint(tmp_path / "none") is None
    for name in (
        "recovery_epoch=2.ckpt",
        "recovery_epoch=10.ckpt",
        "best.ckpt",
        "recovery_epoch=11.ckpt.tmp",
    ):
        (tmp_path / name).write_text(name)  # fmt: skip

    assert find_latest_recovery_checkpoint(tmp_path) == tmp_path / "recovery_epoch=10.ckpt"


def test_recovery_ids_parse_with_and_without_the_experiment(tmp_path: Path) -> None:
    assert split_recovery_id("exp:exp_123_ab") == ("exp", "exp_123_ab")
    assert split_recovery_id("exp_123_ab") == ("", "exp_123_ab")
    for bad in ("", "a:b:c", "exp:"):
        with pytest.raises(InvalidInputError, match="not a run recovery id"):
            split_recovery_id(bad)
    with pytest.raises(RunNotFoundError, match="no run was submitted"):
        get_most_recent_run(tmp_path / "most_recent_run.txt")


def test_metrics_from_many_jobs_at_once_are_all_recorded(tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path / "ws")
    project = tmp_path / "p"
    write_script(
        project,
        "metrics.py",
        """
        from himl_tasks.runtime import log_metric, log_metrics
        for step in range(100):
            log_metric("loss", step / 100, step=step)
        log_metrics({"accuracy": 0.9, "f1": 0.8})
        """,
    )
    refs = [
        backend.submit(JobSpec(entry_script="metrics.py", snapshot_root=project)) for _ in range(6)
    ]

    states = [backend.wait(ref, timeout=60) for ref in refs]

    assert all(s.succeeded for s in states), [s.error for s in states]
    for ref in refs:
        metrics = backend.get_metrics(ref)
        assert [m.step for m in metrics if m.name == "loss"] == list(range(100))
        assert {(m.name, m.value) for m in metrics if m.step is None} == {
            ("accuracy", 0.9),
            ("f1", 0.8),
        }


def test_outside_a_run_inputs_without_local_folder_come_from_the_backend(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = LocalBackend(tmp_path / "workspace")
    write_tree(tmp_path / "v1", {"a.txt": b"one", "deep/b.txt": b"two"})
    backend.datastore().upload_folder(tmp_path / "v1", "scans/v1")
    backend.register_dataset("scans", "", "scans/v1")
    monkeypatch.chdir(tmp_path)
    target = tmp_path / "fetched"
    info = get_run_info(
        input_datasets=[
            DatasetConfig("scans", target_folder=target),
            DatasetConfig("scans", local_folder=tmp_path / "mine"),
            "scans",
        ],
        backend=backend,
    )
    assert info.input_datasets[:2] == [target, tmp_path / "mine"]
    assert read_tree(target) == {"a.txt": b"one", "deep/b.txt": b"two"}
    temporary = info.input_datasets[2]
    assert temporary is not None and read_tree(temporary) == read_tree(target)
    shutil.rmtree(temporary)
    with pytest.raises(DatasetNotFoundError):
        get_run_info(input_datasets=["missing"], backend=backend)
