"""`get_run_info` outside any run: a plain `python script.py`."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from himl_tasks.backends.local.backend import LocalBackend
from himl_tasks.datasets import DatasetConfig
from himl_tasks.errors import DatasetNotFoundError
from himl_tasks.runtime import get_run_info, log_metric, torch_barrier
from tests.backends.conftest import write_script
from tests.conftest import read_tree, write_tree

REPOSITORY = Path(__file__).resolve().parents[2]


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


def test_a_plain_python_script_runs_outside_any_run_and_imports_no_backend(
    tmp_path: Path,
) -> None:
    write_script(
        tmp_path,
        "script.py",
        """
        import logging, sys
        from pathlib import Path
        from himl_tasks.datasets import DatasetConfig
        from himl_tasks.runtime import (
            current_run, find_latest_recovery_checkpoint, get_run_info, log_metric,
        )
        logging.basicConfig(level=logging.INFO, format="%(message)s")
        info = get_run_info(input_datasets=[DatasetConfig("raw", local_folder=Path("data"))])
        log_metric("loss", 0.25, step=1)
        print("run:", info.run, current_run(), info.is_running_in_azure_ml)
        print("inputs:", info.input_datasets, info.output_folder.name, info.logs_folder.name)
        print("checkpoint:", find_latest_recovery_checkpoint("outputs/checkpoints"))
        print("backends:", sorted(m for m in sys.modules if m.startswith("himl_tasks.backends")))
        """,
    )
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("HIML_", "AZUREML_"))
    }
    env["PYTHONPATH"] = str(REPOSITORY)
    env["HIML_RESUME_FROM"] = "exp:run_1"  # alone it means nothing outside a run
    done = subprocess.run(
        [sys.executable, "script.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stdout.splitlines() == [
        "run: None None False",
        "inputs: [PosixPath('data')] outputs logs",
        "checkpoint: None",
        "backends: []",
    ]
    assert "metrics (step 1): {'loss': 0.25}" in done.stderr
    assert (tmp_path / "outputs").is_dir() and (tmp_path / "logs").is_dir()


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
