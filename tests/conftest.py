from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from azure.storage.blob import BlobServiceClient, ContainerClient

from himl_tasks.backends.local.backend import LocalBackend
from himl_tasks.storage import BlobDatastore, Datastore, LocalDatastore, RequestRetryPolicy
from himl_tasks.testing.azurite import Azurite
from himl_tasks.testing.datastore_contract import TEST_BLOCK_SIZE
from himl_tasks.testing.files import read_tree, write_tree

# The package's shared fixtures: `azurite`, one Azurite for the whole session.
pytest_plugins = ["himl_tasks.testing.fixtures"]

# The tests import these from here.
__all__ = ["FAST_RETRY", "TEST_BLOCK_SIZE", "fresh_container", "read_tree", "write_tree"]

FAST_RETRY = RequestRetryPolicy(attempts=4, base_delay=0.01, max_delay=0.05)


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


@pytest.fixture(autouse=True)
def checksum_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test remembers file checksums in its own cache, never in the user's."""
    location = tmp_path / "checksum-cache.sqlite3"
    monkeypatch.setenv("HIML_CHECKSUM_CACHE", str(location))
    return location


@pytest.fixture(scope="session")
def prefect_api() -> Iterator[None]:
    """A real Prefect API (a temporary server on SQLite), one for the whole session.

    It lives here, not in tests/flows, so that every test folder that needs Prefect shares
    the one server (starting one takes tens of seconds on a busy machine).
    """
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=60):
        yield


@pytest.fixture
def prefect_api_url(prefect_api: None, monkeypatch: pytest.MonkeyPatch) -> str:
    """The test Prefect server's API URL, set where a backend finds it: $PREFECT_API_URL.

    (The session's test harness sets it in this process's Prefect settings only.)
    """
    from prefect.settings import PREFECT_API_URL

    url = str(PREFECT_API_URL.value())
    monkeypatch.setenv("PREFECT_API_URL", url)
    return url


@contextmanager
def fresh_container(service: BlobServiceClient) -> Iterator[ContainerClient]:
    """Creates a container with a random name; deletes it and closes the client afterwards."""
    client = service.create_container(f"test-{uuid.uuid4().hex[:20]}")
    try:
        yield client
    finally:
        client.delete_container()
        service.close()


@contextmanager
def workspace_containers(azurite: Azurite) -> Iterator[dict[str, str]]:
    """Fresh containers for an AzureML stand-in's two datastores, deleted afterwards.

    Yields:
        {datastore name: container name} for `workspaceblobstore` (the default datastore)
        and `workspaceartifactstore` (where run files are), as both SDKs name them.
    """
    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    names = {
        "workspaceblobstore": f"blobstore-{uuid.uuid4().hex[:16]}",
        "workspaceartifactstore": f"azureml-{uuid.uuid4().hex[:16]}",
    }
    for container in names.values():
        service.create_container(container)
    try:
        yield names
    finally:
        for container in names.values():
            service.delete_container(container)
        service.close()


@pytest.fixture
def container(azurite: Azurite) -> Iterator[ContainerClient]:
    """A fresh container for one test, deleted afterwards (an SDK client for test setup)."""
    with fresh_container(BlobServiceClient.from_connection_string(azurite.connection_string)) as c:
        yield c


@pytest.fixture
def blob_store(azurite: Azurite, container: ContainerClient) -> BlobDatastore:
    return BlobDatastore.from_connection_string(
        azurite.connection_string,
        container.container_name,
        name="blobstore",
        block_size=TEST_BLOCK_SIZE,
        retry=FAST_RETRY,
    )


@pytest.fixture
def local_store(tmp_path: Path) -> LocalDatastore:
    return LocalDatastore(tmp_path / "datastore", name="folderstore", create=True)


@pytest.fixture(params=["local", "blob"])
def datastore(request: pytest.FixtureRequest) -> Datastore:
    """Each contract test runs once against a folder and once against a blob container."""
    fixture = "local_store" if request.param == "local" else "blob_store"
    store: Datastore = request.getfixturevalue(fixture)
    return store


@pytest.fixture
def workspace(prefect_api: None, tmp_path: Path) -> tuple[str, LocalBackend]:
    """A saved LocalWorkspace block on a fresh folder: (block name, its backend)."""
    from himl_tasks.prefect.blocks import LocalWorkspace

    name = f"test-{uuid.uuid4().hex[:12]}"
    root = tmp_path / "workspace"
    LocalWorkspace(root=str(root)).save(name)
    return f"local-workspace/{name}", LocalBackend(root)
