"""The `MLClient` (azure-ai-ml, SDK v2) on the workspace hi-ml would use, found as for SDK v1.

The places and their order are `himl_tasks.backends.workspace_discovery.discover_workspace`'s,
shared with SDK v1; what is v2's own is here: the run's workspace inside an AzureML job, and
building an `MLClient` with an azure-identity credential (`authentication.azure_credential`).
Building one asks the service nothing: the first request signs in.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from himl_tasks import job_variables
from himl_tasks.backends.azure_sign_in import Authentication, choose_authentication
from himl_tasks.backends.azureml_v2.authentication import azure_credential, describe_sign_in
from himl_tasks.backends.workspace_discovery import (
    AzureMLBlockSettings,
    WorkspaceSettings,
    discover_workspace,
)

logger = logging.getLogger(__name__)

# What AzureML sets in every job about its workspace; azure-ai-ml reads the same three
# (azure/ai/ml/identity/_credentials/_AzureMLSparkOnBehalfOfCredential.py:65-67).
RUN_SUBSCRIPTION = "AZUREML_ARM_SUBSCRIPTION"
RUN_RESOURCE_GROUP = "AZUREML_ARM_RESOURCEGROUP"
RUN_WORKSPACE_NAME = "AZUREML_ARM_WORKSPACE_NAME"
RUN_WORKSPACE_VARIABLES = (RUN_SUBSCRIPTION, RUN_RESOURCE_GROUP, RUN_WORKSPACE_NAME)

MLClientOpener = Callable[[WorkspaceSettings, Authentication], Any]


def open_ml_client(settings: WorkspaceSettings, authentication: Authentication) -> Any:
    """An `MLClient` on the workspace, signing in as chosen when it first asks the service."""
    from himl_tasks.backends.azureml_v2 import sdk

    logger.info(
        "AzureML workspace %s (resource group %s) through SDK v2, signing in with %s",
        settings.workspace_name,
        settings.resource_group,
        describe_sign_in(authentication),
    )
    client_type = sdk.ml().MLClient
    with sdk.quiet():
        return client_type(
            azure_credential(authentication),
            subscription_id=settings.subscription_id,
            resource_group_name=settings.resource_group,
            workspace_name=settings.workspace_name,
        )


def ml_client(
    workspace: Any = None,
    workspace_config_path: str | os.PathLike[str] | None = None,
    block: AzureMLBlockSettings | None = None,
    *,
    search_from: Path | None = None,
    environ: Mapping[str, str] | None = None,
    opener: MLClientOpener = open_ml_client,
) -> Any:
    """The `MLClient` on the workspace hi-ml would use, in SDK v1's places and order.

    1. Inside an AzureML job, the job's own workspace (AZUREML_ARM_SUBSCRIPTION,
       AZUREML_ARM_RESOURCEGROUP, AZUREML_ARM_WORKSPACE_NAME), signing in with the job's
       identity unless HIML_SERVICE_PRINCIPAL_* are set.
    2. `workspace`: an `MLClient` as it is, or `WorkspaceSettings` to open.
    3. `workspace_config_path`, then 4. `block`, then 5. `config.json` from the current folder
       upward, then 6. HIML_SUBSCRIPTION_ID, HIML_RESOURCE_GROUP and HIML_WORKSPACE_NAME, as
       `discover_workspace` says; signing in with a service principal, else the Azure CLI,
       else the default credential chain and a browser.

    Args:
        workspace: An `MLClient`, or the `WorkspaceSettings` of a workspace.
        workspace_config_path: A workspace config file.
        block: A block holding the workspace's settings.
        search_from: Where the search for `config.json` starts (default: the current folder).
        environ: The environment variables to read (default: the process's).
        opener: Builds an `MLClient` from settings and a way of signing in.

    Raises:
        WorkspaceNotFoundError: If no place gives a workspace; the message lists them all.
        ConfigurationError: If a config file is unusable or sign-in settings are incomplete.
    """

    def run_workspace(env: Mapping[str, str]) -> Any:
        return _current_run_ml_client(env, opener)

    return discover_workspace(
        workspace,
        workspace_config_path,
        block,
        given_name="ml_client",
        run_workspace=run_workspace,
        opener=opener,
        search_from=search_from,
        environ=environ,
    )


def _current_run_ml_client(env: Mapping[str, str], opener: MLClientOpener) -> Any:
    """The job's own workspace inside an AzureML job, else None.

    A stale AZUREML_RUN_ID outside any job comes without the workspace's three variables,
    which AzureML sets in the job alone: then the search goes on.
    """
    values = [env.get(name, "") for name in RUN_WORKSPACE_VARIABLES]
    if not env.get(job_variables.AZUREML_RUN_ID) or not all(values):
        return None
    return opener(WorkspaceSettings(*values), choose_authentication(environ=env, in_job=True))
