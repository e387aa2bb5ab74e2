"""Opening the AzureML workspace with azureml-core (SDK v1), found in hi-ml's places and order.

The order and the places are SDK-neutral (`himl_tasks.backends.workspace_discovery`); what is
v1's own is here: the run's workspace inside a run, and opening an `azureml.core.Workspace`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from himl_tasks.backends.azure_sign_in import Authentication
from himl_tasks.backends.azureml_v1.authentication import azureml_authentication
from himl_tasks.backends.workspace_discovery import (
    CONFIG_FILE_NAME,
    WORKSPACE_VARIABLES,
    AzureMLBlockSettings,
    WorkspaceSettings,
    discover_workspace,
    find_config_file,
    find_project_file,
    search_folders,
)
from himl_tasks.errors import ConfigurationError

logger = logging.getLogger(__name__)

__all__ = [
    "CONFIG_FILE_NAME",
    "WORKSPACE_VARIABLES",
    "WorkspaceSettings",
    "find_config_file",
    "find_project_file",
    "get_workspace",
    "open_workspace",
    "search_folders",
]

WorkspaceOpener = Callable[[WorkspaceSettings, Authentication], Any]


def open_workspace(settings: WorkspaceSettings, authentication: Authentication) -> Any:
    """Opens the workspace with the service (which checks that it exists and may be used)."""
    from azureml.core import Workspace

    logger.info(
        "opening AzureML workspace %s (resource group %s), signing in with %s",
        settings.workspace_name,
        settings.resource_group,
        authentication.describe(),
    )
    try:
        return Workspace(
            settings.subscription_id,
            settings.resource_group,
            settings.workspace_name,
            auth=azureml_authentication(authentication),
        )
    except Exception as error:  # azureml, msal and requests raise many unrelated types
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise ConfigurationError(
            f"could not open AzureML workspace '{settings.workspace_name}' (subscription "
            f"{settings.subscription_id}, resource group {settings.resource_group}) signing "
            f"in with {authentication.describe()}: {type(error).__name__}: {first_line}"
        ) from error


def get_workspace(
    aml_workspace: Any = None,
    workspace_config_path: str | os.PathLike[str] | None = None,
    block: AzureMLBlockSettings | None = None,
    *,
    search_from: Path | None = None,
    environ: Mapping[str, str] | None = None,
    opener: WorkspaceOpener = open_workspace,
) -> Any:
    """Returns the AzureML workspace, looking where hi-ml looks, in this order.

    1. Inside an AzureML run (`AZUREML_RUN_ID` set), the run's own workspace, whatever else is
       given: hi-ml checks this first, so that a `config.json` the job's snapshot carries
       (users keep it beside their script) does not make the job sign in again.
    2. `aml_workspace`, when given.
    3. `workspace_config_path`, a `config.json`-style file, when given.
    4. `block`, a Prefect block with the workspace and, optionally, a service principal.
    5. `config.json` in the current folder or its parents, up to the highest parent that is on
       PYTHONPATH (the project root; the whole way up when none is).
    6. HIML_SUBSCRIPTION_ID, HIML_RESOURCE_GROUP and HIML_WORKSPACE_NAME.

    Sign-in (3-6) uses a service principal when HIML_SERVICE_PRINCIPAL_ID,
    HIML_SERVICE_PRINCIPAL_PASSWORD and HIML_TENANT_ID are set (or the block holds one), else
    the Azure CLI's login, else an interactive login.

    Args:
        aml_workspace: A workspace object to use as is.
        workspace_config_path: A workspace config file.
        block: A block holding the workspace's settings.
        search_from: Where the search for `config.json` starts (default: the current folder).
        environ: The environment variables to read (default: the process's).
        opener: Opens a workspace from its settings (the default asks the service).

    Raises:
        WorkspaceNotFoundError: If no place gives a workspace; the message lists them all.
        ConfigurationError: If a config file is unusable or sign-in settings are incomplete.
    """
    return discover_workspace(
        aml_workspace,
        workspace_config_path,
        block,
        given_name="aml_workspace",
        run_workspace=_current_run_workspace,
        opener=opener,
        search_from=search_from,
        environ=environ,
    )


def _current_run_workspace(env: Mapping[str, str]) -> Any:
    if not env.get("AZUREML_RUN_ID"):
        return None
    from azureml.core import Run

    # Outside a run the SDK gives its offline run, which has no experiment (a stale variable).
    experiment = getattr(Run.get_context(), "experiment", None)
    return None if experiment is None else experiment.workspace
