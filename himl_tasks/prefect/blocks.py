"""Prefect blocks that hold where jobs run: workspace settings and credentials (as secrets).

A block is saved once (`AzureMLWorkspace(...).save("prod")`) and named by flows, so secrets
never travel as flow parameters.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

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
    """An AzureML workspace, and optionally the service principal that signs in to it.

    Without a service principal, sign-in uses HIML_SERVICE_PRINCIPAL_* environment variables,
    else the Azure CLI, else an interactive login.
    """

    _block_type_name = "AzureML Workspace"
    _description = "An AzureML workspace for himl-tasks jobs, with optional credentials."

    subscription_id: str = Field(description="The Azure subscription holding the workspace.")
    resource_group: str = Field(description="The resource group holding the workspace.")
    workspace_name: str = Field(description="The workspace's name.")
    tenant_id: str = Field(default="", description="The Entra ID tenant, for sign-in.")
    service_principal_id: str = Field(
        default="", description="The application (client) id of a service principal."
    )
    service_principal_password: SecretStr | None = Field(
        default=None, description="The service principal's client secret."
    )

    def backend(self) -> Backend:
        """The `AzureMLV1Backend` on this workspace."""
        from himl_tasks.backends.azureml_v1 import AzureMLV1Backend

        return AzureMLV1Backend(self.get_workspace())

    def get_workspace(self) -> Any:
        """Opens the workspace (an `azureml.core.Workspace`) with this block's settings."""
        from himl_tasks.backends.azureml_v1.workspace import get_workspace

        return get_workspace(block=self)


WorkspaceBlock = LocalWorkspace | AzureMLWorkspace
"""A block that says where jobs run."""
