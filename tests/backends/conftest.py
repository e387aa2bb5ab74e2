from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from himl_tasks.backends.local.backend import LocalBackend


@pytest.fixture
def backend(tmp_path: Path) -> LocalBackend:
    return LocalBackend(tmp_path / "workspace")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """The user's project folder: the snapshot root of the test's jobs."""
    folder = tmp_path / "project"
    folder.mkdir()
    return folder


def write_script(project: Path, name: str, body: str) -> Path:
    """Writes a job script (dedented) into the project; returns its path."""
    path = project / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(body), encoding="utf-8")
    return path
