"""The flows' AzureML fixtures: saved workspace blocks whose backends talk to the stand-ins."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from azure.storage.blob import BlobServiceClient

from himl_tasks.backends.azureml_v1 import AzureMLV1Backend
from himl_tasks.backends.azureml_v2 import AzureMLV2Backend
from himl_tasks.testing.azurite import ACCOUNT_NAME, Azurite
from tests.backends.azureml_service import (
    ARTIFACT_DATASTORE,
    DEFAULT_DATASTORE,
    FakeAzureMLService,
)
from tests.backends.azureml_v2_execution import ExecutingAzureMLV2Service, executing_v2_service

# MLflow 3.17's SQL store (the stand-in's tracking server) uses loader options SQLAlchemy 2.1
# deprecates, and loading it configures every SQLAlchemy mapper of the process, Prefect's
# server's too, whose UUID type SQLAlchemy 2.1 warns about: warnings of the libraries.
MLFLOW_WARNINGS = [
    pytest.mark.filterwarnings(
        "ignore:The ``noload`` loader strategy is deprecated:DeprecationWarning"
    ),
    pytest.mark.filterwarnings(
        "ignore:Type object .* does not refer to an OperatorClass:DeprecationWarning"
    ),
]


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
    from himl_tasks.prefect.blocks import AzureMLWorkspace

    backend = AzureMLV2Backend(service=v2_service, account_urls={ACCOUNT_NAME: azurite.account_url})
    backend.max_poll_seconds = 0.5  # type: ignore[misc]  # the stand-in answers at once
    name = f"test-v2-{uuid.uuid4().hex[:12]}"
    AzureMLWorkspace(
        subscription_id=v2_service.subscription_id,
        resource_group=v2_service.resource_group,
        workspace_name=v2_service.workspace_name,
        sdk="v2",
    ).save(name)
    # The block's own backend() would sign in to Azure: here it reaches the stand-in.
    monkeypatch.setattr(AzureMLWorkspace, "backend", lambda self: backend)
    return f"azureml-workspace/{name}", backend


@pytest.fixture
def v1_service(azurite: Azurite) -> Iterator[FakeAzureMLService]:
    """The executing AzureML v1 stand-in, on fresh Azurite containers.

    Its clusters: `cpu-cluster` and `gpu-cluster` (on v1 a job's priority is its cluster's).
    """
    client = BlobServiceClient.from_connection_string(azurite.connection_string)
    names = {
        DEFAULT_DATASTORE: f"blobstore-{uuid.uuid4().hex[:16]}",
        ARTIFACT_DATASTORE: f"azureml-{uuid.uuid4().hex[:16]}",
    }
    for container in names.values():
        client.create_container(container)
    service = FakeAzureMLService(
        azurite, names, computes={"cpu-cluster", "gpu-cluster"}, execute=True
    )
    try:
        yield service
    finally:
        service.shutdown()  # no job process outlives its test
        for container in names.values():
            client.delete_container(container)
        client.close()


@pytest.fixture
def v1_workspace(
    prefect_api: None,
    v1_service: FakeAzureMLService,
    azurite: Azurite,
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[str, AzureMLV1Backend]:
    """A saved AzureMLWorkspace block (SDK v1) whose backend talks to the stand-in."""
    from himl_tasks.prefect.blocks import AzureMLWorkspace

    backend = AzureMLV1Backend(service=v1_service, account_urls={ACCOUNT_NAME: azurite.account_url})
    backend.max_poll_seconds = 0.5  # type: ignore[misc]  # the stand-in answers at once
    workspace = v1_service.workspace
    name = f"test-v1-{uuid.uuid4().hex[:12]}"
    AzureMLWorkspace(
        subscription_id=workspace.subscription_id,
        resource_group=workspace.resource_group,
        workspace_name=workspace.name,
        sdk="v1",
    ).save(name)
    # The block's own backend() would sign in to Azure: here it reaches the stand-in.
    monkeypatch.setattr(AzureMLWorkspace, "backend", lambda self: backend)
    return f"azureml-workspace/{name}", backend
