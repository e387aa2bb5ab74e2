"""The AzureML backend hi-ml's functions reach when they are told to use AzureML.

hi-ml's functions take an `aml_workspace` (a Workspace object, or hi-ml 0.5's `ml_client`) or a
`workspace_config_path` (an AzureML `config.json`) and otherwise look for a workspace as
`discover_workspace` does. This is the one place the door turns those into a backend, so that
tests can put an AzureML service stand-in behind it.

Which SDK: a workspace object given decides by what it is (an `azureml.core.Workspace` is SDK
v1's, an `MLClient` SDK v2's); otherwise `sdk` does, "v2" by default as in hi-ml 0.5 ("v1" is
hi-ml's `strictly_aml_v1=True`).
"""

from __future__ import annotations

import os
from typing import Any

from himl_tasks.backends.base import Backend
from himl_tasks.backends.workspace_discovery import AzureMLSdk, checked_sdk


def azureml_backend(
    aml_workspace: Any = None,
    workspace_config_path: str | os.PathLike[str] | None = None,
    *,
    sdk: AzureMLSdk = "v2",
) -> Backend:
    """The AzureML backend on the workspace hi-ml would use.

    Args:
        aml_workspace: An `azureml.core.Workspace` (SDK v1), an `MLClient` (SDK v2), or a
            backend to use as it is.
        workspace_config_path: An AzureML `config.json`.
        sdk: The SDK when no workspace object says: "v2" (azure-ai-ml) or "v1" (azureml-core).

    Raises:
        InvalidInputError: If `sdk` is neither "v1" nor "v2".
        WorkspaceNotFoundError: If neither is given and no workspace is found.
        ConfigurationError: If the config file is unusable or signing in fails.
    """
    if isinstance(aml_workspace, Backend):
        return aml_workspace
    if sdk_of(aml_workspace, checked_sdk(sdk)) == "v1":
        from himl_tasks.backends.azureml_v1 import AzureMLV1Backend, get_workspace

        return AzureMLV1Backend(get_workspace(aml_workspace, workspace_config_path))
    from himl_tasks.backends.azureml_v2.backend import AzureMLV2Backend
    from himl_tasks.backends.azureml_v2.workspace import ml_client

    return AzureMLV2Backend(ml_client(aml_workspace, workspace_config_path))


def sdk_of(aml_workspace: Any, sdk: AzureMLSdk) -> AzureMLSdk:
    """The SDK of a workspace object (`azureml.*` is v1's, `azure.ai.ml.*` v2's), else `sdk`."""
    module = type(aml_workspace).__module__
    if aml_workspace is None:
        return sdk
    if module.startswith("azureml."):
        return "v1"
    if module.startswith("azure.ai.ml."):
        return "v2"
    return sdk
