"""Which workspace a command uses: `--workspace`, else the library's own order.

`--workspace` is read in the order `get_workspace` reads its arguments (a config file before a
block, `himl_tasks.backends.azureml_v1.workspace`): a file or folder that exists is used as
such, and only a name that is neither is looked up as a saved Prefect block.

An AzureML workspace is reached through SDK v2 (azure-ai-ml) unless `--sdk v1` says
otherwise: the library's default, as hi-ml 0.5's. The hi-ml console scripts (`himl-download`,
`himl-tb`) keep hi-ml's flags, which have no such choice, so they use v2.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path

from himl_tasks.backends.base import Backend
from himl_tasks.backends.local.backend import LocalBackend
from himl_tasks.backends.local.registry import DATABASE_NAME
from himl_tasks.backends.workspace_discovery import AzureMLSdk
from himl_tasks.cli.saved_blocks import backend_of_saved_block, is_block_name
from himl_tasks.errors import WorkspaceNotFoundError
from himl_tasks.himl.workspace_resolution import resolve_backend


class AzureMLSdkChoice(enum.StrEnum):
    """`--sdk`'s values."""

    V1 = "v1"
    V2 = "v2"


@dataclass(frozen=True)
class WorkspaceChoice:
    """What the command line says about the workspace, before it is opened."""

    workspace: str | None
    sdk: AzureMLSdk


def backend_for_command(workspace: str | None, *, sdk: AzureMLSdk = "v2") -> Backend:
    """The backend a command works on.

    Args:
        workspace: A local workspace folder (one holding a registry), a file
            `resolve_backend` reads (an AzureML `config.json`, a local datastores TOML file),
            or the name of a saved workspace block ("local-workspace/demo",
            "azureml-workspace/prod", or a bare name only one of them has), read through the
            Prefect API. None: the library's order
            (`himl_tasks.himl.workspace_resolution.resolve_backend`, which ends at
            `$HIML_HOME`, else `./.himl`).
        sdk: The AzureML SDK, when the workspace is an AzureML one: "v2" or "v1" (a saved
            block says its own).

    Raises:
        WorkspaceNotFoundError: `workspace` names nothing, or a folder that is no workspace.
        ConfigurationError: As `resolve_backend` raises for a file it cannot use; for a block
            name, when no Prefect API is configured or it cannot be reached.
    """
    if workspace is None:
        return resolve_backend(sdk=sdk)
    path = Path(workspace).expanduser()
    if path.is_dir():
        if not (path / DATABASE_NAME).is_file():
            raise WorkspaceNotFoundError(
                f"{path} is not a local workspace: it holds no {DATABASE_NAME}"
            )
        return LocalBackend(path.absolute())
    if path.is_file():
        return resolve_backend(workspace_config_path=path, sdk=sdk)
    if is_block_name(workspace):
        return backend_of_saved_block(workspace)
    raise WorkspaceNotFoundError(
        f"no workspace '{workspace}': give a local workspace folder, an AzureML config.json, "
        "or a saved workspace block's name (local-workspace/NAME, azureml-workspace/NAME)"
    )
