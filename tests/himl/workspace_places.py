"""Arranging the places hi-ml looks for a workspace, for the tests of `resolve_backend` and of the
functions built on it. AzureML is the service stand-in, behind the door's one seam."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from himl_tasks.backends.base import Backend
from himl_tasks.himl import azureml_workspace

# Every variable that decides where the workspace is (himl_tasks.job_variables, the azureml_v1
# workspace's HIML_* trio, the local workspace's home).
PLACE_VARIABLES = (
    "AZUREML_RUN_ID", "HIML_IN_JOB", "HIML_WORKSPACE", "HIML_HOME", "HIML_SUBSCRIPTION_ID",
    "HIML_RESOURCE_GROUP", "HIML_WORKSPACE_NAME",
)  # fmt: skip
WORKSPACE_VARIABLES = {
    "HIML_SUBSCRIPTION_ID": "sub",
    "HIML_RESOURCE_GROUP": "rg",
    "HIML_WORKSPACE_NAME": "ws",
}


@dataclass
class AzureMLSeam:
    """Stands in for `azureml_backend`: records how it was asked, answers with the stand-in."""

    backend: Backend
    calls: list[dict[str, Any]] = field(default_factory=list)
    sdks: list[str] = field(default_factory=list)
    error: Exception | None = None

    def __call__(
        self,
        aml_workspace: Any = None,
        workspace_config_path: str | os.PathLike[str] | None = None,
        *,
        sdk: str = "v2",
    ) -> Backend:
        self.calls.append({"aml_workspace": aml_workspace, "config": workspace_config_path})
        self.sdks.append(sdk)
        if self.error is not None:
            raise self.error
        return self.backend


@pytest.fixture
def cwd_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The user's project, the current folder, with none of the places set.

    PYTHONPATH names the project, so the config.json search stops there (hi-ml's rule), not
    in whatever folders above the test's temporary folder hold.
    """
    folder = tmp_path / "project"
    folder.mkdir()
    for name in PLACE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PYTHONPATH", str(folder))
    monkeypatch.chdir(folder)
    return folder


def seam_to(backend: Backend, monkeypatch: pytest.MonkeyPatch) -> AzureMLSeam:
    seam = AzureMLSeam(backend)
    monkeypatch.setattr(azureml_workspace, "azureml_backend", seam)
    return seam


def write_config_json(folder: Path) -> Path:
    """An AzureML config.json, as the portal gives it."""
    path = folder / "config.json"
    path.write_text(
        json.dumps({"subscription_id": "sub", "resource_group": "rg", "workspace_name": "ws"})
    )
    return path
