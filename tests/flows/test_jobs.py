"""The demo's job scripts, run as plain scripts (outside any job), and its data export."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

from flows.preprocess_then_train import export_digits
from scripts.demo import PROJECT_ROOT


def run(script: str, *args: str, cwd: Path) -> str:
    done = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "flows" / "jobs" / script), *args],
        cwd=cwd, capture_output=True, text=True, check=True, timeout=300,
    )  # fmt: skip
    return done.stdout


def test_the_export_is_scikit_learns_digits(tmp_path: Path) -> None:
    from sklearn.datasets import load_digits

    table = np.loadtxt(export_digits.fn(tmp_path) / "digits.csv", delimiter=",", skiprows=1)
    digits = load_digits()
    assert np.array_equal(table[:, :-1], digits.data)
    assert np.array_equal(table[:, -1], digits.target)


def test_the_jobs_run_as_plain_scripts_and_training_resumes(tmp_path: Path) -> None:
    raw, features = export_digits.fn(tmp_path / "raw"), tmp_path / "features"
    run("preprocess.py", "--raw_folder", str(raw), "--output_folder", str(features), cwd=tmp_path)
    sizes = {s: len(np.load(features / f"{s}.npz")["labels"]) for s in ("train", "val", "test")}
    assert sizes == {"train": 1258, "val": 269, "test": 270}

    first = run("train.py", "--data_folder", str(features), "--epochs", "2", cwd=tmp_path)
    assert "epoch 1:" in first and "resuming" not in first
    second = run("train.py", "--data_folder", str(features), "--epochs", "10", cwd=tmp_path)
    assert "resuming from recovery_epoch=1.ckpt" in second
    assert "epoch 0:" not in second and "epoch 9:" in second
    checkpoints = sorted(p.name for p in (tmp_path / "outputs" / "checkpoints").iterdir())
    assert checkpoints == ["best_model.ckpt", "recovery_epoch=9.ckpt"]
    accuracy = float(second.rsplit("test accuracy", 1)[1])
    assert accuracy >= 0.95
    # TensorBoard (what himl-tb serves) reads one curve per metric over both runs: epochs 0..9.
    from tensorboard.backend.event_processing.event_multiplexer import (  # type: ignore[import-untyped]
        EventMultiplexer,
    )

    board = EventMultiplexer().AddRunsFromDirectory(str(tmp_path / "outputs")).Reload()
    [run_name] = board.Runs()
    assert run_name == "tensorboard"
    for tag in ("train_loss", "val_accuracy"):
        assert [event.step for event in board.Scalars(run_name, tag)] == list(range(10))
    assert board.Scalars(run_name, "val_accuracy")[-1].value >= 0.9


def test_himl_tb_finds_the_training_run_s_curves(tmp_path: Path) -> None:
    """The demo's training job as a local run: himl-tb's mirror of `outputs` holds its curves."""
    from tensorboard.backend.event_processing.event_multiplexer import (
        EventMultiplexer,
    )

    from himl_tasks.backends.local.backend import LocalBackend
    from himl_tasks.cli.tensorboard_logs import TensorBoardLogs
    from himl_tasks.job_spec import JobSpec

    raw, features = export_digits.fn(tmp_path / "raw"), tmp_path / "features"
    run("preprocess.py", "--raw_folder", str(raw), "--output_folder", str(features), cwd=tmp_path)
    backend = LocalBackend(tmp_path / "workspace")
    spec = JobSpec(
        entry_script="train.py",
        args=["--data_folder", str(features), "--epochs", "3"],
        snapshot_root=PROJECT_ROOT / "flows" / "jobs",
    )
    ref = backend.submit(backend.plan(spec))
    assert backend.wait(ref, timeout=240).succeeded
    # What himl-tb serves: its mirror of the runs' event files.
    logs = TensorBoardLogs(backend, [ref], "outputs", tmp_path / "tb", tmp_path / "tb-staging")
    logs.sync()
    board = EventMultiplexer().AddRunsFromDirectory(str(tmp_path / "tb")).Reload()
    assert list(board.Runs()) == [f"{ref.run_id}/outputs/tensorboard"], list(board.Runs())
    for tag in ("train_loss", "val_accuracy"):
        steps = [event.step for event in board.Scalars(f"{ref.run_id}/outputs/tensorboard", tag)]
        assert steps == [0, 1, 2]
