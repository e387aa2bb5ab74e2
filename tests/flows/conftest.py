"""The flows' AzureML fixtures: saved workspace blocks whose backends talk to the stand-ins."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Literal

import pytest

from himl_tasks.backends.azureml_v1 import AzureMLV1Backend
from himl_tasks.backends.azureml_v2 import AzureMLV2Backend
from himl_tasks.testing.azurite import ACCOUNT_NAME, Azurite
from tests.backends.azureml_service import FakeAzureMLService, stand_in_service
from tests.backends.azureml_v2_execution import ExecutingAzureMLV2Service, executing_v2_service


@pytest.fixture
def v2_service(azurite: Azurite) -> Iterator[ExecutingAzureMLV2Service]:
    yield from executing_v2_service(azurite)


@pytest.fixture
def v2_workspace(
    prefect_api: None,
    v2_service: ExecutingAzureMLV2Service,
    azurite: Azurite,
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[str, AzureMLV2Backend]:
    """A saved AzureMLWorkspace block (SDK v2) whose backend talks to the stand-in."""
    backend = AzureMLV2Backend(service=v2_service, account_urls={ACCOUNT_NAME: azurite.account_url})
    backend.max_poll_seconds = 0.5  # type: ignore[misc]  # the stand-in answers at once
    block = saved_block(
        monkeypatch,
        backend,
        (v2_service.subscription_id, v2_service.resource_group, v2_service.workspace_name),
        "v2",
    )
    return block, backend


@pytest.fixture
def v1_service(azurite: Azurite) -> Iterator[FakeAzureMLService]:
    """The executing AzureML v1 stand-in, on fresh Azurite containers.

    Its clusters: `cpu-cluster` and `gpu-cluster` (on v1 a job's priority is its cluster's).
    """
    yield from stand_in_service(azurite, {"cpu-cluster", "gpu-cluster"}, execute=True)


@pytest.fixture
def v1_workspace(
    prefect_api: None,
    v1_service: FakeAzureMLService,
    azurite: Azurite,
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[str, AzureMLV1Backend]:
    """A saved AzureMLWorkspace block (SDK v1) whose backend talks to the stand-in."""
    backend = AzureMLV1Backend(service=v1_service, account_urls={ACCOUNT_NAME: azurite.account_url})
    backend.max_poll_seconds = 0.5  # type: ignore[misc]  # the stand-in answers at once
    workspace = v1_service.workspace
    block = saved_block(
        monkeypatch,
        backend,
        (workspace.subscription_id, workspace.resource_group, workspace.name),
        "v1",
    )
    return block, backend


def saved_block(
    monkeypatch: pytest.MonkeyPatch,
    backend: AzureMLV1Backend | AzureMLV2Backend,
    workspace: tuple[str, str, str],
    sdk: Literal["v1", "v2"],
) -> str:
    """Saves an AzureMLWorkspace block of the SDK `sdk` whose backend is `backend`.

    Args:
        monkeypatch: Undoes the block's backend after the test.
        backend: The backend on the stand-in.
        workspace: The subscription, resource group and workspace name.
        sdk: The SDK the block chooses.

    Returns:
        The block's saved name, as flows take it.
    """
    from himl_tasks.prefect.blocks import AzureMLWorkspace

    name = f"test-{sdk}-{uuid.uuid4().hex[:12]}"
    subscription_id, resource_group, workspace_name = workspace
    AzureMLWorkspace(
        subscription_id=subscription_id,
        resource_group=resource_group,
        workspace_name=workspace_name,
        sdk=sdk,
    ).save(name)
    # The block's own backend() would sign in to Azure: here it reaches the stand-in.
    monkeypatch.setattr(AzureMLWorkspace, "backend", lambda self: backend)
    return f"azureml-workspace/{name}"
