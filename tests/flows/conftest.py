from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from himl_tasks.backends.local.backend import LocalBackend


@pytest.fixture(scope="session")
def prefect_api() -> Iterator[None]:
    """A real Prefect API (a temporary server on SQLite) for the whole session."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=60):
        yield


@pytest.fixture
def workspace(prefect_api: None, tmp_path: Path) -> tuple[str, LocalBackend]:
    """A saved LocalWorkspace block on a fresh folder: (block name, its backend)."""
    from himl_tasks.blocks import LocalWorkspace

    name = f"test-{uuid.uuid4().hex[:12]}"
    root = tmp_path / "workspace"
    LocalWorkspace(root=str(root)).save(name)
    return f"local-workspace/{name}", LocalBackend(root)
