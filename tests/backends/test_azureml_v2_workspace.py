"""SDK v2's workspace and sign-in: real `MLClient`s and azure-identity credentials, offline.

Every client here is azure-ai-ml's own `MLClient`, built by `ml_client` as a user's would be;
nothing reaches Azure: names do not resolve (`offline`), and a token is asked for only where a
test wants sign-in to fail.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import stat
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from himl_tasks.backends.azure_sign_in import AuthenticationKind
from himl_tasks.backends.azureml_v2 import sdk
from himl_tasks.backends.azureml_v2.authentication import SignInCredential
from himl_tasks.backends.azureml_v2.workspace import ml_client
from himl_tasks.backends.workspace_discovery import WorkspaceSettings
from himl_tasks.errors import ConfigurationError, WorkspaceNotFoundError
from himl_tasks.prefect.blocks import AzureMLWorkspace

PASSWORD = "sp-password-" + os.urandom(6).hex()
SP_ENV = {
    "HIML_SERVICE_PRINCIPAL_ID": "app-id",
    "HIML_SERVICE_PRINCIPAL_PASSWORD": PASSWORD,
    "HIML_TENANT_ID": "tenant-id",
}
NO_AZ = {"PATH": "/nonexistent"}
HIML_VARIABLES = {
    "HIML_SUBSCRIPTION_ID": "env-sub",
    "HIML_RESOURCE_GROUP": "env-rg",
    "HIML_WORKSPACE_NAME": "from-env",
}
# What AzureML sets in a job (see himl_tasks/backends/azureml_v2/workspace.py).
IN_JOB = {
    "AZUREML_RUN_ID": "keen_job_1",
    "AZUREML_ARM_SUBSCRIPTION": "job-sub",
    "AZUREML_ARM_RESOURCEGROUP": "job-rg",
    "AZUREML_ARM_WORKSPACE_NAME": "from-job",
}


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """No name resolves but the machine's own: nothing here can reach Azure."""
    resolve = socket.getaddrinfo

    def local_only(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host not in ("localhost", "127.0.0.1", "::1", None):
            raise socket.gaierror(socket.EAI_NONAME, f"{host}: offline in this test")
        return resolve(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", local_only)


def write_config(folder: Path, name: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "config.json"
    settings = {"subscription_id": f"{name}-sub", "resource_group": f"{name}-rg",
                "workspace_name": name}  # fmt: skip
    path.write_text(json.dumps(settings))
    return path


def block(name: str = "from-block", password: str = PASSWORD, **changes: Any) -> AzureMLWorkspace:
    settings: dict[str, Any] = {
        "subscription_id": "block-sub",
        "resource_group": "block-rg",
        "workspace_name": name,
        "sdk": "v2",
        "tenant_id": "block-tenant",
        "service_principal_id": "block-app",
        "service_principal_password": SecretStr(password),
    }
    return AzureMLWorkspace(**{**settings, **changes})


def workspace_of(client: Any) -> tuple[str, str, str]:
    return client.subscription_id, client.resource_group_name, client.workspace_name


def credential_of(client: Any) -> Any:
    """The azure-identity credential inside the client's sign-in wrapper."""
    assert isinstance(client._credential, SignInCredential)
    return client._credential.credential


def fake_az(folder: Path, stderr: str = "ERROR: Please run 'az login' to setup account.") -> Path:
    """An `az` on PATH that answers as the Azure CLI does when nobody is logged in."""
    folder.mkdir(parents=True, exist_ok=True)
    az = folder / "az"
    az.write_text(f'#!/bin/sh\necho "{stderr}" >&2\nexit 1\n')
    az.chmod(az.stat().st_mode | stat.S_IEXEC)
    return folder


def test_each_place_gives_an_ml_client_in_v1s_order(tmp_path: Path) -> None:
    from azure.identity import ClientSecretCredential, DefaultAzureCredential

    project = tmp_path / "project"
    write_config(project, "from-search")
    explicit_file = write_config(tmp_path / "elsewhere", "from-file")
    env = {**HIML_VARIABLES, **NO_AZ}

    def found(**kwargs: Any) -> Any:
        return ml_client(search_from=project, environ=env, **kwargs)

    given = found(workspace=WorkspaceSettings("given-sub", "given-rg", "given"))
    assert workspace_of(given) == ("given-sub", "given-rg", "given")
    assert ml_client(given, explicit_file, block(), environ=env) is given
    from_file = found(workspace_config_path=explicit_file, block=block())
    assert workspace_of(from_file) == ("from-file-sub", "from-file-rg", "from-file")
    from_block = found(block=block())
    assert workspace_of(from_block) == ("block-sub", "block-rg", "from-block")
    assert workspace_of(found()) == ("from-search-sub", "from-search-rg", "from-search")
    (project / "config.json").unlink()
    from_env = found()
    assert workspace_of(from_env) == ("env-sub", "env-rg", "from-env")

    # Sign-in: the block's principal; else (no az on PATH) the default chain and a browser.
    principal = credential_of(from_block)
    assert type(principal) is ClientSecretCredential
    assert (principal._client_id, principal._tenant_id) == ("block-app", "block-tenant")
    for client in (given, from_file, from_env):
        chain = credential_of(client)
        assert type(chain) is DefaultAzureCredential
        assert type(chain.credentials[-1]).__name__ == "InteractiveBrowserCredential"


def test_service_principal_variables_then_the_azure_cli(tmp_path: Path) -> None:
    from azure.identity import AzureCliCredential, ClientSecretCredential

    env = {**HIML_VARIABLES, **SP_ENV, **NO_AZ}
    principal = credential_of(ml_client(search_from=tmp_path, environ=env))
    assert type(principal) is ClientSecretCredential
    assert (principal._client_id, principal._tenant_id) == ("app-id", "tenant-id")

    env = {**HIML_VARIABLES, "PATH": str(fake_az(tmp_path / "bin")), "HIML_TENANT_ID": "t"}
    client = ml_client(search_from=tmp_path, environ=env)
    cli = credential_of(client)
    assert type(cli) is AzureCliCredential and cli.tenant_id == "t"
    assert client._credential.authentication.kind is AuthenticationKind.AZURE_CLI


def test_inside_an_azureml_job_its_own_workspace_and_identity_come_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from azure.ai.ml.identity import AzureMLOnBehalfOfCredential
    from azure.identity import ManagedIdentityCredential

    # As in a job on a cluster with a managed identity: azure-identity reaches AzureML's
    # token endpoint through MSI_ENDPOINT and MSI_SECRET; DEFAULT_IDENTITY_CLIENT_ID names it.
    for name, value in {"MSI_ENDPOINT": "http://127.0.0.1:9/msi", "MSI_SECRET": "s",
                        "DEFAULT_IDENTITY_CLIENT_ID": "cluster-identity"}.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("OBO_ENDPOINT", raising=False)
    write_config(tmp_path, "from-search")  # the snapshot's config.json: not used in the job
    env = {**IN_JOB, **HIML_VARIABLES, "PYTHONPATH": str(tmp_path), **NO_AZ}

    client = ml_client(None, tmp_path / "config.json", block(), search_from=tmp_path, environ=env)
    assert workspace_of(client) == ("job-sub", "job-rg", "from-job")
    identity = credential_of(client)
    assert type(identity) is ManagedIdentityCredential
    assert identity._credential._client._identity_config == {"clientid": "cluster-identity"}

    # A job submitted with the submitter's identity: AzureML sets OBO_ENDPOINT.
    monkeypatch.setenv("OBO_ENDPOINT", "http://127.0.0.1:9/obo")
    with sdk.quiet():
        on_behalf = credential_of(ml_client(search_from=tmp_path, environ=env))
    assert type(on_behalf) is AzureMLOnBehalfOfCredential

    # A service principal given to the job wins over the job's identity.
    from azure.identity import ClientSecretCredential

    principal = credential_of(ml_client(search_from=tmp_path, environ={**env, **SP_ENV}))
    assert type(principal) is ClientSecretCredential


def test_a_stale_azureml_run_id_outside_any_job_is_passed_over(tmp_path: Path) -> None:
    write_config(tmp_path, "from-search")
    env = {"AZUREML_RUN_ID": "stale", "PYTHONPATH": str(tmp_path), **NO_AZ}
    assert ml_client(search_from=tmp_path, environ=env).workspace_name == "from-search"


def test_nothing_found_lists_every_place_looked_at(tmp_path: Path) -> None:
    env = {"HIML_SUBSCRIPTION_ID": "s", "PYTHONPATH": str(tmp_path), **NO_AZ}
    with pytest.raises(WorkspaceNotFoundError) as raised:
        ml_client(search_from=tmp_path, environ=env)
    message = str(raised.value)
    places = [
        "1. the current AzureML run: not inside one",
        "2. ml_client: not given",
        "3. workspace_config_path: not given",
        "4. a Prefect block",
        f"5. config.json in {tmp_path}: not found",
        "6. environment variables: HIML_RESOURCE_GROUP, HIML_WORKSPACE_NAME not set",
    ]
    for place in places:
        assert place in message


def test_a_broken_config_file_or_block_is_named(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text('{"subscription_id": "s", "resource_group": "r"}')
    with pytest.raises(ConfigurationError, match="config.json lacks workspace_name"):
        ml_client(workspace_config_path=path, environ=NO_AZ)
    path.write_text("{not json")
    with pytest.raises(ConfigurationError, match="is not JSON"):
        ml_client(workspace_config_path=path, environ=NO_AZ)
    with pytest.raises(ConfigurationError, match="does not exist"):
        ml_client(workspace_config_path=tmp_path / "missing.json", environ=NO_AZ)
    with pytest.raises(ConfigurationError, match="service principal but no tenant_id"):
        ml_client(block=block(tenant_id=""), environ=NO_AZ)


def test_a_partial_service_principal_is_an_error_naming_what_is_missing(tmp_path: Path) -> None:
    env = {**HIML_VARIABLES, "HIML_SERVICE_PRINCIPAL_PASSWORD": PASSWORD, **NO_AZ}
    with pytest.raises(ConfigurationError) as raised:
        ml_client(search_from=tmp_path, environ=env)
    assert "HIML_SERVICE_PRINCIPAL_ID, HIML_TENANT_ID are not set" in str(raised.value)
    assert PASSWORD not in str(raised.value)


def test_a_failed_azure_cli_sign_in_is_one_error_saying_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The SDK asks for a token at its first request: the CLI answers that nobody is logged in.
    monkeypatch.setenv("PATH", str(fake_az(tmp_path / "bin")))
    env = {**HIML_VARIABLES, "PATH": os.environ["PATH"]}
    client = ml_client(search_from=tmp_path, environ=env)
    with pytest.raises(ConfigurationError) as raised, sdk.quiet():
        client.jobs.get("keen_job_1")
    message = str(raised.value)
    assert message.startswith("could not sign in to Azure with the Azure CLI's login: ")
    assert "run `az login`" in message and "HIML_SERVICE_PRINCIPAL_ID" in message


def test_a_failed_service_principal_sign_in_never_shows_the_secret(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    settings = block()
    client = ml_client(block=settings, environ=NO_AZ)
    with pytest.raises(ConfigurationError) as raised, sdk.quiet():
        client.jobs.get("keen_job_1")  # the identity service cannot be reached: offline
    message = str(raised.value)
    assert "could not sign in to Azure with service principal block-app" in message
    assert "the secret may have expired" in message
    texts = [message, repr(client._credential), repr(settings), str(settings.model_dump()),
             settings.model_dump_json(), caplog.text]  # fmt: skip
    for text in texts:
        assert PASSWORD not in text


def test_a_failed_default_chain_sign_in_says_what_was_tried_and_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No az on PATH, no AZURE_* variables, no managed identity, no browser: every link fails.
    for name in ("AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET", "MSI_ENDPOINT",
                 "IDENTITY_ENDPOINT", "AZURE_FEDERATED_TOKEN_FILE", "DISPLAY"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setenv("HOME", str(tmp_path))  # no developer tool's cached login
    import webbrowser

    monkeypatch.setattr(webbrowser, "open", lambda *args, **kwargs: False)  # nobody's desk
    client = ml_client(search_from=tmp_path, environ={**HIML_VARIABLES, **NO_AZ})
    assert "default credential chain" in repr(client._credential)
    with pytest.raises(ConfigurationError) as raised, sdk.quiet():
        client._credential.get_token("https://management.azure.com/.default")
    message = str(raised.value)
    assert message.startswith("could not sign in to Azure with Azure's default credential chain")
    assert "install the Azure CLI and run `az login`" in message
