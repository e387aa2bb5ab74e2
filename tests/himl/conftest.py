from __future__ import annotations

import os

import pytest

# The AzureML stand-in and a project folder, shared with the backends' tests.
from tests.backends.conftest import aml, aml_service, executing_aml, project

__all__ = ["aml", "aml_service", "executing_aml", "project"]


@pytest.fixture
def outside_any_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """No variable a backend sets: this process is outside any run until a test says so."""
    for name in list(os.environ):
        if name.startswith(("HIML_", "AZUREML_")) or name in ("RANK", "LOCAL_RANK"):
            monkeypatch.delenv(name)
