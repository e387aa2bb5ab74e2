"""Prefect blocks that hold where jobs run: workspace settings and credentials (as secrets).

A block is saved once (`AzureMLWorkspace(...).save("prod")`) and named by flows, so secrets
never travel as flow parameters.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from prefect.blocks.core import Block
from pydantic import Field, SecretStr

if TYPE_CHECKING:
    from himl_tasks.backends.base import Backend


class LocalWorkspace(Block):
    """The embedded local backend: a workspace folder on the machine that runs the flow."""

    _block_type_name = "Local Workspace"
    _description = "The embedded himl-tasks backend: jobs run as local processes."

    root: str = Field(
        default="", description="The workspace folder (empty: $HIML_HOME, else ./.himl)."
    )

    def backend(self) -> Backend:
        """The `LocalBackend` on this folder."""
        from himl_tasks.backends.local.backend import LocalBackend

        return LocalBackend(self.root or None)


class AzureMLWorkspace(Block):
    """An AzureML workspace, the SDK that talks to it, and optionally a service principal.

    Without a service principal, sign-in uses HIML_SERVICE_PRINCIPAL_* environment variables,
    else the Azure CLI, else an interactive login.

    `sdk` is "v1" (azureml-core: `AzureMLV1Backend`) unless set to "v2" (azure-ai-ml:
    `AzureMLV2Backend`). The default stays "v1" because a saved block is configuration: blocks
    saved before SDK v2 existed here load without the field, and the name they are saved
    under must keep reaching the same backend, datasets and runs. New blocks should say
    `sdk="v2"` (the hi-ml door and the `himl` command default to v2, as hi-ml 0.5 does).
    """

    _block_type_name = "AzureML Workspace"
    _description = "An AzureML workspace for himl-tasks jobs, with optional credentials."

    subscription_id: str = Field(description="The Azure subscription holding the workspace.")
    resource_group: str = Field(description="The resource group holding the workspace.")
    workspace_name: str = Field(description="The workspace's name.")
    sdk: Literal["v1", "v2"] = Field(
        default="v1",
        description="The AzureML SDK jobs are submitted with: v1 (azureml-core) or v2 "
        "(azure-ai-ml). Blocks saved without it are v1.",
    )
    tenant_id: str = Field(default="", description="The Entra ID tenant, for sign-in.")
    service_principal_id: str = Field(
        default="", description="The application (client) id of a service principal."
    )
    service_principal_password: SecretStr | None = Field(
        default=None, description="The service principal's client secret."
    )

    def backend(self) -> Backend:
        """The `AzureMLV1Backend` or `AzureMLV2Backend` on this workspace, as `sdk` says."""
        if self.sdk == "v2":
            from himl_tasks.backends.azureml_v2.backend import AzureMLV2Backend

            return AzureMLV2Backend(self.get_ml_client())
        from himl_tasks.backends.azureml_v1 import AzureMLV1Backend

        return AzureMLV1Backend(self.get_workspace())

    def get_workspace(self) -> Any:
        """Opens the workspace (an `azureml.core.Workspace`, SDK v1) with this block's settings."""
        from himl_tasks.backends.azureml_v1.workspace import get_workspace

        return get_workspace(block=self)

    def get_ml_client(self) -> Any:
        """An `MLClient` (SDK v2) on this block's workspace; it signs in on its first request."""
        from himl_tasks.backends.azureml_v2.workspace import ml_client

        return ml_client(block=self)


WorkspaceBlock = LocalWorkspace | AzureMLWorkspace
"""A block that says where jobs run."""
