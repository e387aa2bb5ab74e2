"""Which workspace a command uses: `--workspace`, else the library's own order."""

from __future__ import annotations

from pathlib import Path

from himl_tasks.backends.base import Backend
from himl_tasks.backends.local.backend import LocalBackend
from himl_tasks.backends.local.registry import DATABASE_NAME
from himl_tasks.errors import WorkspaceNotFoundError
from himl_tasks.himl.workspace_resolution import resolve_backend


def backend_for_command(workspace: str | None) -> Backend:
    """The backend a command works on.

    Args:
        workspace: A local workspace folder (one holding a registry), or a file
            `resolve_backend` reads (an AzureML `config.json`, a local datastores TOML file).
            None: the library's order (`himl_tasks.himl.workspace_resolution.resolve_backend`,
            which ends at `$HIML_HOME`, else `./.himl`).

    Raises:
        WorkspaceNotFoundError: `workspace` names nothing, or a folder that is no workspace.
        ConfigurationError: As `resolve_backend` raises for a file it cannot use.
    """
    if workspace is None:
        return resolve_backend()
    path = Path(workspace).expanduser()
    if path.is_dir():
        if not (path / DATABASE_NAME).is_file():
            raise WorkspaceNotFoundError(
                f"{path} is not a local workspace: it holds no {DATABASE_NAME}"
            )
        return LocalBackend(path.absolute())
    if path.is_file():
        return resolve_backend(workspace_config_path=path)
    raise WorkspaceNotFoundError(
        f"no workspace '{workspace}': give a local workspace folder or an AzureML config.json "
        "(saved Prefect blocks are read by the flows, not by this command)"
    )
