from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from himl_tasks.backends.local.backend import LocalBackend


@pytest.fixture
def workspace(prefect_api: None, tmp_path: Path) -> tuple[str, LocalBackend]:
    """A saved LocalWorkspace block on a fresh folder: (block name, its backend)."""
    from himl_tasks.blocks import LocalWorkspace

    name = f"test-{uuid.uuid4().hex[:12]}"
    root = tmp_path / "workspace"
    LocalWorkspace(root=str(root)).save(name)
    return f"local-workspace/{name}", LocalBackend(root)
