"""Prefect blocks that hold where jobs run: workspace settings and credentials (as secrets).

A block is saved once (`AzureMLWorkspace(...).save("prod")`) and named by flows, so secrets
never travel as flow parameters.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from prefect.blocks.core import Block
from pydantic import Field, SecretStr

from himl_tasks.errors import ConfigurationError

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

_SAVE_EXAMPLES = {
    "local-workspace": "LocalWorkspace(root='.himl').save('{name}')",
    "azureml-workspace": (
        "AzureMLWorkspace(subscription_id=..., resource_group=..., workspace_name=...)"
        ".save('{name}')"
    ),
}


def load_backend(block_document: str) -> Backend:
    """The backend a saved workspace block describes, e.g. "local-workspace/demo".

    The block's class is chosen from the name's type part, so loading does not import every
    installed Prefect collection (as `Block.load` does, which costs seconds).

    Raises:
        ConfigurationError: If the name is not "<workspace block type>/<name>", or no such
            block is saved.
    """
    kinds: dict[str, type[WorkspaceBlock]] = {
        "local-workspace": LocalWorkspace,
        "azureml-workspace": AzureMLWorkspace,
    }
    kind, _, name = block_document.partition("/")
    if kind not in kinds or not name:
        raise ConfigurationError(
            f"'{block_document}' does not name a workspace block: write "
            f"'<type>/<name>' with type {' or '.join(kinds)}, e.g. 'local-workspace/demo'"
        )
    try:
        block = kinds[kind].load(name)  # sync here: flows and tasks call it from sync code
    except ValueError as error:
        raise ConfigurationError(
            f"no block '{block_document}' is saved on the Prefect server ({error}). Save one, "
            f"e.g. `{_SAVE_EXAMPLES[kind].format(name=name)}`"
        ) from None
    if not isinstance(block, WorkspaceBlock):
        raise ConfigurationError(f"block '{block_document}' is not a workspace block")
    return block.backend()
