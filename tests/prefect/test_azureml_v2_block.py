"""A saved `AzureMLWorkspace(sdk="v2")` block, end to end: a real Prefect API, the block's own
`MLClient`, and the AzureML v2 service stand-in at the backend's service seam
(tests/backends/azureml_v2_service.py), its files on Azurite."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from prefect import flow
from pydantic import SecretStr

from himl_tasks.backends.azureml_v2 import AzureMLV2Backend
from himl_tasks.backends.azureml_v2 import backend as v2_backend
from himl_tasks.job_spec import JobSpec
from himl_tasks.prefect import AzureMLWorkspace, backend_for, submit_job, wait_for_job
from himl_tasks.runs import RunState, RunStatus
from himl_tasks.testing.azurite import ACCOUNT_NAME, Azurite
from tests.backends import azureml_v2_service as v2
from tests.backends.conftest import (
    aml_v2_service,  # noqa: F401
    write_script,
)

SECRET = "sp-secret-" + uuid.uuid4().hex


@pytest.fixture
def v2_block(
    prefect_api: None,
    aml_v2_service: v2.FakeAzureMLV2Service,  # noqa: F811
    azurite: Azurite,
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[str, list[Any]]:
    """A saved v2 block on the stand-in's workspace: (its name, the MLClients the seam got)."""
    clients: list[Any] = []

    def service_on(ml_client: Any) -> v2.FakeAzureMLV2Service:
        clients.append(ml_client)
        return aml_v2_service

    class OnAzurite(AzureMLV2Backend):
        """The backend as the block makes it; its storage account is Azurite's."""

        def __init__(self, ml_client: Any = None, **options: Any) -> None:
            super().__init__(ml_client, account_urls={ACCOUNT_NAME: azurite.account_url}, **options)

    monkeypatch.setattr(v2_backend, "MLClientService", service_on)
    monkeypatch.setattr(v2_backend, "AzureMLV2Backend", OnAzurite)
    name = f"test-{uuid.uuid4().hex[:12]}"
    AzureMLWorkspace(
        subscription_id=v2.SUBSCRIPTION,
        resource_group=v2.RESOURCE_GROUP,
        workspace_name=v2.WORKSPACE,
        sdk="v2",
        tenant_id="tenant",
        service_principal_id="app",
        service_principal_password=SecretStr(SECRET),
    ).save(name)
    return f"azureml-workspace/{name}", clients


def test_a_saved_v2_block_submits_and_waits_through_azureml_v2(
    v2_block: tuple[str, list[Any]],
    aml_v2_service: v2.FakeAzureMLV2Service,  # noqa: F811
    tmp_path: Path,
) -> None:
    from azure.identity import ClientSecretCredential

    name, clients = v2_block
    project = tmp_path / "project"
    write_script(project, "environment.yml", "name: job\ndependencies:\n  - python=3.11\n")
    write_script(project, "train.py", "print('training')\n")
    aml_v2_service.outcomes["train.py"] = v2.Outcome(log_lines=("training",))
    spec = JobSpec(entry_script="train.py", snapshot_root=project, compute="cpu-cluster")

    @flow
    def train() -> RunState:
        run = submit_job(name, spec)
        return wait_for_job(name, run, timeout_seconds=60)

    state = train()

    assert state.status is RunStatus.COMPLETED
    backend = backend_for(name)
    assert isinstance(backend, AzureMLV2Backend)
    assert backend.workspace_key() == (
        f"azureml_v2:{v2.SUBSCRIPTION}/{v2.RESOURCE_GROUP}/{v2.WORKSPACE}"
    )
    # The block made one MLClient, on its workspace, signing in as its service principal.
    [client] = clients
    assert (client.subscription_id, client.resource_group_name, client.workspace_name) == (
        v2.SUBSCRIPTION, v2.RESOURCE_GROUP, v2.WORKSPACE,
    )  # fmt: skip
    principal = client._credential.credential
    assert type(principal) is ClientSecretCredential and principal._client_id == "app"
    assert SECRET not in repr(client._credential)
