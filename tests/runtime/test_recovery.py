"""`find_latest_recovery_checkpoint`: the folder first, then the resumed run's (in-job half)."""

from __future__ import annotations

from pathlib import Path

import pytest

from himl_tasks.runtime import find_latest_recovery_checkpoint
from tests.runtime.conftest import FakeInJob


def test_the_latest_recovery_checkpoint_is_the_highest_epoch(
    tmp_path: Path, clean_job_environment: None
) -> None:
    assert find_latest_recovery_checkpoint(tmp_path / "none") is None
    for name in (
        "recovery_epoch=2.ckpt",
        "recovery_epoch=10.ckpt",
        "best.ckpt",
        "recovery_epoch=11.ckpt.tmp",
    ):
        (tmp_path / name).write_text(name)  # fmt: skip

    assert find_latest_recovery_checkpoint(tmp_path) == tmp_path / "recovery_epoch=10.ckpt"


def test_a_resumed_job_asks_its_in_job_half_only_when_the_folder_has_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_in_job: FakeInJob
) -> None:
    folder = tmp_path / "outputs" / "checkpoints"
    assert find_latest_recovery_checkpoint(folder) is None
    assert fake_in_job.fetched == []  # not a resumed job

    monkeypatch.setenv("HIML_RESUME_FROM", "exp:lost_1")
    fake_in_job.checkpoint = b"epoch 7"
    found = find_latest_recovery_checkpoint(str(folder))
    assert found == folder / "recovery_epoch=7.ckpt" and found.read_bytes() == b"epoch 7"
    assert fake_in_job.fetched == [("exp:lost_1", folder)]

    assert find_latest_recovery_checkpoint(folder) == found
    assert len(fake_in_job.fetched) == 1  # the folder has one now: nothing is fetched again


def test_a_resumed_job_whose_in_job_half_fetches_nothing_finds_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_in_job: FakeInJob
) -> None:
    monkeypatch.setenv("HIML_RESUME_FROM", "exp:lost_1")
    assert find_latest_recovery_checkpoint(tmp_path) is None
    assert fake_in_job.fetched == [("exp:lost_1", tmp_path)]
