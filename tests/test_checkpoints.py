"""The pure recovery checkpoint finder: it only reads a folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from himl_tasks.checkpoints import latest_recovery_checkpoint


def test_the_latest_recovery_checkpoint_is_the_highest_epoch(tmp_path: Path) -> None:
    assert latest_recovery_checkpoint(tmp_path / "none") is None
    assert latest_recovery_checkpoint(tmp_path) is None
    for name in (
        "recovery_epoch=2.ckpt",
        "recovery_epoch=10.ckpt",  # 10 > 2 as a number, though not as text
        "recovery_epoch=9.ckpt",
        "best_epoch=50.ckpt",  # not a recovery checkpoint
        "recovery_last.ckpt",  # no epoch number
        "recovery_epoch=11.ckpt.tmp",  # still being written by a job preempted mid-save
        "recovery_epoch=12.ckpt.partial",
        "recovery_epoch=13.ckpt.himl-partial",  # a download not finished
    ):
        (tmp_path / name).write_text(name)  # fmt: skip
    (tmp_path / "recovery_epoch=99").mkdir()  # a folder, not a checkpoint

    assert latest_recovery_checkpoint(tmp_path) == tmp_path / "recovery_epoch=10.ckpt"
    assert latest_recovery_checkpoint(str(tmp_path)) == tmp_path / "recovery_epoch=10.ckpt"


def test_the_finder_fetches_nothing_even_in_a_resumed_job(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # In a job these would make the runtime's finder ask the in-job half to fetch; the pure
    # finder (what a backend calls on the platform side) never looks at them.
    monkeypatch.setenv("HIML_IN_JOB", "not.a.backend")
    monkeypatch.setenv("HIML_RESUME_FROM", "exp:run_1")
    assert latest_recovery_checkpoint(tmp_path) is None
