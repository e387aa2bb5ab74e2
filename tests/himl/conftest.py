"""Fixtures of the hi-ml door's tests: a user's project, and the AzureML stand-in's backend."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

# The AzureML service stand-in and its backend, shared with the backends' tests.
from tests.backends.conftest import (
    aml,
    aml_service,
    aml_v2,
    aml_v2_service,
    backend,
    executing_aml,
    executing_aml_v2,
    executing_aml_v2_service,
    project,
)
from tests.himl.workspace_places import cwd_project
from tests.runtime.conftest import clean_job_environment

__all__ = [
    "aml",
    "aml_service",
    "aml_v2",
    "aml_v2_service",
    "backend",
    "clean_job_environment",
    "cwd_project",
    "executing_aml",
    "executing_aml_v2",
    "executing_aml_v2_service",
    "project",
]


@pytest.fixture
def outside_any_run(clean_job_environment: None) -> None:
    """No variable a backend sets: this process is outside any run until a test says so."""


@pytest.fixture
def himl_project(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, outside_any_run: None
) -> Iterator[Path]:
    """A user's project folder as the current folder, outside any run, its os.environ restored.

    The local workspace is `$HIML_HOME` in the test's folder. A plain run writes variables
    into os.environ, as hi-ml does: they are put back afterwards.
    """
    project = tmp_path / "project"
    project.mkdir()
    (project / "environment.yml").write_text(
        "name: sample\ndependencies:\n  - python=3.11\n", encoding="utf-8"
    )
    saved = dict(os.environ)
    monkeypatch.setenv("HIML_HOME", str(tmp_path / "workspace"))
    monkeypatch.chdir(project)
    try:
        yield project
    finally:
        os.environ.clear()
        os.environ.update(saved)
