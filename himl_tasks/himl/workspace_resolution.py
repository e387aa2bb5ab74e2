"""Which workspace hi-ml's functions use when they are not told plainly: one documented order.

hi-ml's helpers (`upload_to_datastore`, `download_files_from_run_id`, ...) take an
`aml_workspace` and a `workspace_config_path`, and otherwise find the workspace themselves. Here
the local workspace is one more place, so the order must say when it is used: only when hi-ml
would find no AzureML workspace at all. Where hi-ml would use AzureML (a `config.json` found
upward, inside an AzureML run, the `HIML_*` variables), the answer is AzureML or an error, never
the local folder.

1. `aml_workspace` given: a backend is used as it is; a `LocalWorkspaceConfig` gives the local
   workspace it describes; an `azureml.core.Workspace` gives AzureML through SDK v1, an
   `MLClient` AzureML through SDK v2.
2. `workspace_config_path` given: an AzureML `config.json` (subscription_id, resource_group,
   workspace_name) gives AzureML; a local datastores file (TOML, `[datastores.<name>]` tables)
   gives the local workspace with those datastores; anything else is an error.
3. Inside an AzureML run: the run's workspace (through SDK v1 in a job himl-tasks submitted
   with SDK v1, so a job keeps to its own SDK).
4. Inside a local run: the run's workspace (`HIML_WORKSPACE`).
5. `config.json` in the current folder or a parent (up to the project root on PYTHONPATH, as
   hi-ml searches): AzureML.
6. HIML_SUBSCRIPTION_ID, HIML_RESOURCE_GROUP and HIML_WORKSPACE_NAME set: AzureML.
7. Otherwise the local workspace (`$HIML_HOME`, else `./.himl`), said in one INFO log line.

Every AzureML step goes through `himl_tasks.himl.azureml_workspace.azureml_backend`, with the
SDK asked for (`sdk`: "v2" by default, as hi-ml 0.5; "v1" for hi-ml's `strictly_aml_v1=True`)
unless a workspace object given says which; the order is the same for both. Signing in that
fails is an error, not a reason to fall back to the local workspace.
"""

from __future__ import annotations

import json
import logging
import os
import tomllib
from pathlib import Path
from typing import Any

from himl_tasks import job_variables
from himl_tasks.backends.base import Backend
from himl_tasks.backends.local.backend import LocalBackend
from himl_tasks.backends.local.workspace_config import (
    DATASTORES_FILE_NAME,
    LocalWorkspaceConfig,
)
from himl_tasks.backends.workspace_discovery import (
    CONFIG_FILE_NAME,
    WORKSPACE_VARIABLES,
    AzureMLSdk,
    WorkspaceSettings,
    checked_sdk,
    find_config_file,
)
from himl_tasks.errors import ConfigurationError, InvalidInputError
from himl_tasks.himl import azureml_workspace
from himl_tasks.runtime import is_running_in_azure_ml

logger = logging.getLogger(__name__)

AZUREML_CONFIG_FIELDS = ("subscription_id", "resource_group", "workspace_name")


def resolve_backend(
    aml_workspace: Any = None,
    workspace_config_path: str | os.PathLike[str] | None = None,
    *,
    sdk: AzureMLSdk = "v2",
) -> Backend:
    """The workspace hi-ml's functions use, as a backend, in the order of the module docstring.

    Args:
        aml_workspace: A backend, a `LocalWorkspaceConfig`, an `azureml.core.Workspace` or an
            `MLClient`.
        workspace_config_path: An AzureML `config.json`, or a local datastores TOML file.
        sdk: The AzureML SDK when AzureML is chosen and no workspace object says which: "v2"
            (azure-ai-ml, hi-ml 0.5's default) or "v1" (azureml-core).

    Raises:
        InvalidInputError: If `aml_workspace` is none of the accepted kinds, or `sdk` is
            neither "v1" nor "v2".
        ConfigurationError: If `workspace_config_path` is missing or neither kind of file, if
            only some of the HIML_* workspace variables are set, or signing in to AzureML fails.
        WorkspaceNotFoundError: If AzureML was chosen but its workspace cannot be found.
    """
    sdk = checked_sdk(sdk)
    if aml_workspace is not None:
        return _given_workspace(aml_workspace, sdk)
    if workspace_config_path is not None:
        return _from_config_file(Path(workspace_config_path), sdk)
    if is_running_in_azure_ml():
        submitted_with_v1 = os.environ.get(job_variables.IN_JOB) == job_variables.AZUREML_V1_IN_JOB
        return azureml_workspace.azureml_backend(sdk="v1" if submitted_with_v1 else sdk)
    local_job_workspace = os.environ.get(job_variables.WORKSPACE)
    if local_job_workspace:
        return LocalBackend(local_job_workspace)
    found = find_config_file(Path.cwd().absolute(), os.environ.get("PYTHONPATH", ""))
    if found is not None:
        return azureml_workspace.azureml_backend(workspace_config_path=found, sdk=sdk)
    set_variables = [name for name in WORKSPACE_VARIABLES if os.environ.get(name)]
    if len(set_variables) == len(WORKSPACE_VARIABLES):
        return azureml_workspace.azureml_backend(sdk=sdk)
    if set_variables:
        unset = [name for name in WORKSPACE_VARIABLES if name not in set_variables]
        raise ConfigurationError(
            f"{', '.join(set_variables)} set but {', '.join(unset)} not: an AzureML workspace "
            f"needs all of {', '.join(WORKSPACE_VARIABLES)}; set the others, or unset these to "
            "use the local workspace"
        )
    backend = LocalBackend()
    logger.info(
        "no AzureML workspace given or found (no %s from %s upward, no %s): using the local "
        "workspace at %s",
        CONFIG_FILE_NAME,
        Path.cwd(),
        "/".join(WORKSPACE_VARIABLES),
        backend.root,
    )
    return backend


def _given_workspace(aml_workspace: Any, sdk: AzureMLSdk) -> Backend:
    if isinstance(aml_workspace, Backend):
        return aml_workspace
    if isinstance(aml_workspace, LocalWorkspaceConfig):
        # Its own datastores file need not exist; one named instead of it must.
        own = aml_workspace.config_path == aml_workspace.root / DATASTORES_FILE_NAME
        datastores_file = None if own else aml_workspace.config_path
        return LocalBackend(aml_workspace.root, datastores_file=datastores_file)
    module = type(aml_workspace).__module__
    # An azureml.core.Workspace (SDK v1) or an MLClient (SDK v2): the object says which SDK.
    if module.startswith(("azureml.", "azure.ai.ml.")):
        return azureml_workspace.azureml_backend(aml_workspace, sdk=sdk)
    raise InvalidInputError(
        f"aml_workspace must be an azureml.core.Workspace, an azure.ai.ml MLClient, a "
        f"himl-tasks backend or a LocalWorkspaceConfig, not {type(aml_workspace).__name__}"
    )


def _from_config_file(path: Path, sdk: AzureMLSdk) -> Backend:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigurationError(f"workspace config file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigurationError(
            f"workspace config file {path} cannot be read: {type(error).__name__}: {error}"
        ) from None
    if _is_json(text):
        WorkspaceSettings.from_config_file(path)  # an AzureML config.json: names missing fields
        return azureml_workspace.azureml_backend(workspace_config_path=path, sdk=sdk)
    if _is_datastores_toml(text):
        return LocalBackend(datastores_file=path)
    raise ConfigurationError(
        f"workspace config file {path} is neither an AzureML config.json (JSON with "
        f"{', '.join(AZUREML_CONFIG_FIELDS)}, as downloaded from the AzureML portal) nor a "
        "local datastores file (TOML with [datastores.<name>] tables)"
    )


def _is_json(text: str) -> bool:
    try:
        return isinstance(json.loads(text), dict)
    except json.JSONDecodeError:
        return False


def _is_datastores_toml(text: str) -> bool:
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return False
    return set(document) <= {"datastores"}
