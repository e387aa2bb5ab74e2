"""A backend's in-job half written for the tests (a plugin, as a new backend would add one)."""

from __future__ import annotations

import os
import sys
import types
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from himl_tasks.runtime import AzureRunInfo

FAKE_IN_JOB = "himl_tasks.backends.fake.in_job"


@dataclass
class FakeRun:
    run_id: str = "fake_1"
    experiment: str = "fake"
    attempt: int = 1
    logged: list[tuple[dict[str, float], int | None]] = field(default_factory=list)

    def log_metrics(self, values: Mapping[str, float], step: int | None = None) -> None:
        self.logged.append((dict(values), step))


@dataclass
class FakeInJob:
    """A backend's in-job half as the runtime sees it, recording what it is asked."""

    run: FakeRun = field(default_factory=FakeRun)
    fetched: list[tuple[str, Path]] = field(default_factory=list)
    checkpoint: bytes | None = None

    def module(self) -> types.ModuleType:
        module = types.ModuleType(FAKE_IN_JOB)
        module.run_context = lambda: self.run  # type: ignore[attr-defined]
        module.run_info = lambda: AzureRunInfo(  # type: ignore[attr-defined]
            [Path("/in/0")], [], Path("/out"), Path("/logs"), run=self.run
        )
        module.fetch_resumed_checkpoint = self.fetch  # type: ignore[attr-defined]
        return module

    def fetch(self, recovery_id: str, folder: Path) -> None:
        self.fetched.append((recovery_id, folder))
        if self.checkpoint is not None:
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "recovery_epoch=7.ckpt").write_bytes(self.checkpoint)


@pytest.fixture
def clean_job_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No variable a backend sets: this process is outside any run until a test says so."""
    for name in list(os.environ):
        if name.startswith(("HIML_", "AZUREML_")) or name in ("RANK", "LOCAL_RANK"):
            monkeypatch.delenv(name)


@pytest.fixture
def fake_in_job(monkeypatch: pytest.MonkeyPatch, clean_job_environment: None) -> FakeInJob:
    """A fake backend's in-job half, importable by name and named by HIML_IN_JOB."""
    fake = FakeInJob()
    monkeypatch.setitem(sys.modules, FAKE_IN_JOB, fake.module())
    monkeypatch.setenv("HIML_IN_JOB", FAKE_IN_JOB)
    return fake
