"""Fixtures of the command line's tests: a user's project as the current folder, its local
workspace in `$HIML_HOME`, and the AzureML stand-in (shared with the backends' tests)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.backends.conftest import aml, aml_service, executing_aml
from tests.himl.workspace_places import cwd_project
from tests.runtime.conftest import clean_job_environment

__all__ = ["aml", "aml_service", "clean_job_environment", "cwd_project", "executing_aml"]


@pytest.fixture
def workspace(cwd_project: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The local workspace the commands find by the library's order (`$HIML_HOME`)."""
    folder = cwd_project.parent / "workspace"
    monkeypatch.setenv("HIML_HOME", str(folder))
    return folder
