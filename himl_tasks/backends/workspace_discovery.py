"""Finding the AzureML workspace to use, in hi-ml's places and order, for either SDK.

The order is written once, here: `discover_workspace` takes what differs between the SDKs (the
run's own workspace, and how a workspace is opened from its settings) as functions.
`azureml_v1.workspace.get_workspace` opens an `azureml.core.Workspace` with it,
`azureml_v2.workspace.ml_client` an `MLClient`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol, TypeAlias, TypeVar

from himl_tasks.backends.azure_sign_in import (
    Authentication,
    SecretValue,
    ServicePrincipal,
    choose_authentication,
)
from himl_tasks.errors import ConfigurationError, InvalidInputError, WorkspaceNotFoundError

CONFIG_FILE_NAME = "config.json"
SUBSCRIPTION_ID = "HIML_SUBSCRIPTION_ID"
RESOURCE_GROUP = "HIML_RESOURCE_GROUP"
WORKSPACE_NAME = "HIML_WORKSPACE_NAME"
WORKSPACE_VARIABLES = (SUBSCRIPTION_ID, RESOURCE_GROUP, WORKSPACE_NAME)

AzureMLSdk: TypeAlias = Literal["v1", "v2"]
"""Which AzureML SDK talks to a workspace: "v1" (azureml-core) or "v2" (azure-ai-ml)."""
AZUREML_SDKS: tuple[AzureMLSdk, ...] = ("v1", "v2")


def checked_sdk(sdk: object) -> AzureMLSdk:
    """`sdk` when it names an AzureML SDK.

    Raises:
        InvalidInputError: If it is neither "v1" nor "v2".
    """
    for known in AZUREML_SDKS:
        if sdk == known:
            return known
    raise InvalidInputError(f"sdk must be 'v1' (azureml-core) or 'v2' (azure-ai-ml), not {sdk!r}")


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


class AzureMLBlockSettings(Protocol):
    """What the workspace search reads from a Prefect block (see `himl_tasks.prefect.blocks`)."""

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


Workspace = TypeVar("Workspace")


def discover_workspace(
    given: Workspace | WorkspaceSettings | None,
    workspace_config_path: str | os.PathLike[str] | None,
    block: AzureMLBlockSettings | None,
    *,
    given_name: str,
    run_workspace: Callable[[Mapping[str, str]], Workspace | None],
    opener: Callable[[WorkspaceSettings, Authentication], Workspace],
    search_from: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> Workspace:
    """The workspace, looking where hi-ml looks, in this order.

    1. Inside an AzureML run, the run's own workspace (`run_workspace`), whatever else is
       given: hi-ml checks this first, so that a `config.json` the job's snapshot carries
       (users keep it beside their script) does not make the job sign in again.
    2. `given`, when given: a workspace is used as it is, `WorkspaceSettings` are opened.
    3. `workspace_config_path`, a `config.json`-style file, when given.
    4. `block`, a Prefect block with the workspace and, optionally, a service principal.
    5. `config.json` in the current folder or its parents, up to the highest parent that is on
       PYTHONPATH (the project root; the whole way up when none is).
    6. HIML_SUBSCRIPTION_ID, HIML_RESOURCE_GROUP and HIML_WORKSPACE_NAME.

    Sign-in (3-6) is `choose_authentication`'s: a service principal when
    HIML_SERVICE_PRINCIPAL_ID, HIML_SERVICE_PRINCIPAL_PASSWORD and HIML_TENANT_ID are set (or
    the block holds one), else the Azure CLI's login, else an interactive login.

    Args:
        given: A workspace (the SDK's own object) to use as is, or the settings of one.
        workspace_config_path: A workspace config file.
        block: A block holding the workspace's settings.
        given_name: What the caller calls `given`, for the error message.
        run_workspace: The current run's workspace from the environment, or None outside one.
        opener: Opens a workspace from its settings with the chosen sign-in.
        search_from: Where the search for `config.json` starts (default: the current folder).
        environ: The environment variables to read (default: the process's).

    Raises:
        WorkspaceNotFoundError: If no place gives a workspace; the message lists them all.
        ConfigurationError: If a config file is unusable or sign-in settings are incomplete.
    """
    env = os.environ if environ is None else environ
    in_run = run_workspace(env)
    if in_run is not None:
        return in_run
    if isinstance(given, WorkspaceSettings):
        return opener(given, choose_authentication(environ=env))
    if given is not None:
        return given
    if workspace_config_path is not None:
        settings = WorkspaceSettings.from_config_file(Path(workspace_config_path))
        return opener(settings, choose_authentication(environ=env))
    if block is not None:
        principal = block_service_principal(block)
        return opener(block_settings(block), choose_authentication(principal, environ=env))
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
        f"  2. {given_name}: not given\n"
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


def block_settings(block: AzureMLBlockSettings) -> WorkspaceSettings:
    """The workspace a block names.

    Raises:
        ConfigurationError: If the block lacks one of its three settings.
    """
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


def block_service_principal(block: AzureMLBlockSettings) -> ServicePrincipal | None:
    """The service principal a block holds, its secret kept as the block's `SecretStr`.

    Raises:
        ConfigurationError: If the block has a principal but no tenant.
    """
    password = block.service_principal_password
    if not block.service_principal_id or password is None:
        return None
    if not block.tenant_id:
        raise ConfigurationError(
            "the workspace block has a service principal but no tenant_id; set tenant_id"
        )
    return ServicePrincipal(block.service_principal_id, block.tenant_id, password)
