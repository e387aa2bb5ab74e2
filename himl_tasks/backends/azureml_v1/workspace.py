"""Finding the AzureML workspace to use, in the places hi-ml users expect, in hi-ml's order."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from himl_tasks.backends.azureml_v1.authentication import (
    Authentication,
    ServicePrincipal,
    choose_authentication,
)
from himl_tasks.errors import ConfigurationError, WorkspaceNotFoundError

logger = logging.getLogger(__name__)

CONFIG_FILE_NAME = "config.json"
SUBSCRIPTION_ID = "HIML_SUBSCRIPTION_ID"
RESOURCE_GROUP = "HIML_RESOURCE_GROUP"
WORKSPACE_NAME = "HIML_WORKSPACE_NAME"
WORKSPACE_VARIABLES = (SUBSCRIPTION_ID, RESOURCE_GROUP, WORKSPACE_NAME)


@dataclass(frozen=True)
class WorkspaceSettings:
    """Which workspace: subscription, resource group and name (no secrets)."""

    subscription_id: str
    resource_group: str
    workspace_name: str

    @classmethod
    def from_config_file(cls, path: Path) -> WorkspaceSettings:
        """Reads an AzureML `config.json` (as downloaded from the portal).

        Raises:
            ConfigurationError: If the file is missing, is not JSON, or lacks a field.
        """
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigurationError(f"workspace config file {path} does not exist") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise ConfigurationError(
                f"workspace config file {path} is not JSON ({error.__class__.__name__}); "
                "download it again from the AzureML portal"
            ) from None
        fields = ("subscription_id", "resource_group", "workspace_name")
        missing = [f for f in fields if not isinstance(data, dict) or not data.get(f)]
        if missing:
            raise ConfigurationError(
                f"workspace config file {path} lacks {', '.join(missing)}; it needs "
                f"{', '.join(fields)}"
            )
        return cls(*(str(data[f]) for f in fields))


class SecretValue(Protocol):
    """A secret that is read only on purpose (pydantic's `SecretStr` is one)."""

    def get_secret_value(self) -> str:
        """The secret itself."""
        ...


class AzureMLBlockSettings(Protocol):
    """What `get_workspace` reads from a Prefect block (see `himl_tasks.prefect.blocks`)."""

    @property
    def subscription_id(self) -> str:
        """The Azure subscription."""
        ...

    @property
    def resource_group(self) -> str:
        """The resource group."""
        ...

    @property
    def workspace_name(self) -> str:
        """The workspace's name."""
        ...

    @property
    def tenant_id(self) -> str:
        """The tenant, for a service principal ("" when none)."""
        ...

    @property
    def service_principal_id(self) -> str:
        """The service principal's application id ("" when none)."""
        ...

    @property
    def service_principal_password(self) -> SecretValue | None:
        """The service principal's secret."""
        ...


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
            auth=authentication.build(),
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
    env = os.environ if environ is None else environ
    run_workspace = _current_run_workspace(env)
    if run_workspace is not None:
        return run_workspace
    if aml_workspace is not None:
        return aml_workspace
    if workspace_config_path is not None:
        settings = WorkspaceSettings.from_config_file(Path(workspace_config_path))
        return opener(settings, choose_authentication(environ=env))
    if block is not None:
        return opener(_block_settings(block), choose_authentication(_principal(block), environ=env))
    start = (search_from or Path.cwd()).absolute()
    found = find_config_file(start, env.get("PYTHONPATH", ""))
    if found is not None:
        settings = WorkspaceSettings.from_config_file(found)
        return opener(settings, choose_authentication(environ=env))
    values = [env.get(name, "") for name in WORKSPACE_VARIABLES]
    if all(values):
        return opener(WorkspaceSettings(*values), choose_authentication(environ=env))
    unset = [name for name, value in zip(WORKSPACE_VARIABLES, values, strict=True) if not value]
    searched = search_folders(start, env.get("PYTHONPATH", ""))
    raise WorkspaceNotFoundError(
        "no AzureML workspace found. Looked at, in order:\n"
        "  1. the current AzureML run: not inside one\n"
        "  2. aml_workspace: not given\n"
        "  3. workspace_config_path: not given\n"
        "  4. a Prefect block (AzureMLWorkspace): not given\n"
        f"  5. {CONFIG_FILE_NAME} in {', '.join(str(f) for f in searched)}: not found\n"
        f"  6. environment variables: {', '.join(unset)} not set\n"
        f"Download {CONFIG_FILE_NAME} from the AzureML portal into your project, or set "
        f"{', '.join(WORKSPACE_VARIABLES)}."
    )


def find_config_file(start: Path, python_path: str) -> Path | None:
    """The `config.json` in the first of `search_folders` that has one, or None."""
    return find_project_file(CONFIG_FILE_NAME, start, python_path)


def find_project_file(name: str, start: Path, python_path: str) -> Path | None:
    """The file `name` in the first of `search_folders` that has one, or None."""
    for folder in search_folders(start, python_path):
        if (folder / name).is_file():
            return folder / name
    return None


def search_folders(start: Path, python_path: str) -> list[Path]:
    """The folders searched for project files (`config.json`, `environment.yml`).

    They are `start` and its parents, up to the highest parent that is on PYTHONPATH (the
    project root), or all the way up when none is.
    """
    on_path = {Path(p).absolute() for p in python_path.split(os.pathsep) if p}
    folders = [start, *start.parents]
    stops = [i for i, folder in enumerate(folders) if folder in on_path]
    return folders[: max(stops) + 1] if stops else folders


def _block_settings(block: AzureMLBlockSettings) -> WorkspaceSettings:
    missing = [
        name
        for name in ("subscription_id", "resource_group", "workspace_name")
        if not getattr(block, name, "")
    ]
    if missing:
        raise ConfigurationError(
            f"the workspace block lacks {', '.join(missing)}; edit the block to set them"
        )
    return WorkspaceSettings(block.subscription_id, block.resource_group, block.workspace_name)


def _principal(block: AzureMLBlockSettings) -> ServicePrincipal | None:
    password = block.service_principal_password
    if not block.service_principal_id or password is None:
        return None
    if not block.tenant_id:
        raise ConfigurationError(
            "the workspace block has a service principal but no tenant_id; set tenant_id"
        )
    return ServicePrincipal(
        block.service_principal_id, block.tenant_id, password.get_secret_value()
    )


def _current_run_workspace(env: Mapping[str, str]) -> Any:
    if not env.get("AZUREML_RUN_ID"):
        return None
    from azureml.core import Run

    # Outside a run the SDK gives its offline run, which has no experiment (a stale variable).
    experiment = getattr(Run.get_context(), "experiment", None)
    return None if experiment is None else experiment.workspace
