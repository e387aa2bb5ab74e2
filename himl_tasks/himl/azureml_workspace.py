"""The AzureML backend hi-ml's functions reach when they are told to use AzureML.

hi-ml's functions take an `aml_workspace` (a Workspace object) or a `workspace_config_path`
(an AzureML `config.json`) and otherwise look for a workspace as `get_workspace` does. This is
the one place the door turns those into a backend, so that tests can put the AzureML service
stand-in behind it.
"""

from __future__ import annotations

import os
from typing import Any

from himl_tasks.backends.base import Backend


def azureml_backend(
    aml_workspace: Any = None, workspace_config_path: str | os.PathLike[str] | None = None
) -> Backend:
    """The AzureML backend on the workspace hi-ml would use.

    Args:
        aml_workspace: An `azureml.core.Workspace`, or a backend to use as it is.
        workspace_config_path: An AzureML `config.json`.

    Raises:
        WorkspaceNotFoundError: If neither is given and no workspace is found.
        ConfigurationError: If the config file is unusable or signing in fails.
    """
    if isinstance(aml_workspace, Backend):
        return aml_workspace
    from himl_tasks.backends.azureml_v1 import AzureMLV1Backend, get_workspace

    return AzureMLV1Backend(get_workspace(aml_workspace, workspace_config_path))
