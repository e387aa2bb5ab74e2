"""Datasets and datastores on AzureML v2: data assets over datastore folders, moved by the engine.

The backend talks to the v2 service stand-in (azureml_v2_service.py); the files are in Azurite.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from himl_tasks.backends.azureml_v2 import AzureMLV2Backend, sdk
from himl_tasks.datasets import DatasetConfig
from himl_tasks.errors import ConfigurationError, DatasetNotFoundError, DatastoreNotFoundError
from himl_tasks.testing.azurite import ACCOUNT_NAME, Azurite
from himl_tasks.testing.files import read_tree
from tests.backends.azureml_v2_service import FakeAzureMLV2Service


def upload(backend: AzureMLV2Backend, tmp_path: Path, folder: str, files: dict[str, bytes]) -> None:
    source = tmp_path / f"source-{folder.replace('/', '-')}"
    for name, data in files.items():
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        (source / name).write_bytes(data)
    backend.datastore().upload_folder(source, folder)


def test_versions_resolve_latest_by_default_and_download_through_the_engine(
    aml_v2: AzureMLV2Backend, tmp_path: Path
) -> None:
    upload(aml_v2, tmp_path, "scans/v1", {"a.txt": b"one"})
    upload(aml_v2, tmp_path, "scans/v2", {"a.txt": b"two", "sub/b.txt": b"b"})
    one = aml_v2.register_dataset("scans", "", "scans/v1")
    two = aml_v2.register_dataset("scans", "", "scans/v2", created_by_run="job_1")

    assert (one.version, two.version) == (1, 2)
    assert aml_v2.resolve_dataset(DatasetConfig("scans")) == two
    assert aml_v2.resolve_dataset(DatasetConfig("scans", version=1)) == one
    assert (two.datastore, two.path, two.created_by_run) == (
        "workspaceblobstore",
        "scans/v2",
        "job_1",
    )
    with pytest.raises(DatasetNotFoundError):
        aml_v2.resolve_dataset(DatasetConfig("scans", version=3))
    folder = aml_v2.local_dataset_folder(DatasetConfig("scans"), tmp_path / "local")
    assert read_tree(folder) == {"a.txt": b"two", "sub/b.txt": b"b"}


def test_a_missing_asset_is_made_from_its_folder_else_refused(
    aml_v2: AzureMLV2Backend, aml_v2_service: FakeAzureMLV2Service, tmp_path: Path
) -> None:
    with pytest.raises(DatasetNotFoundError, match="no folder 'absent/'"):
        aml_v2.resolve_dataset(DatasetConfig("absent"))
    upload(aml_v2, tmp_path, "fresh", {"x.csv": b"1"})

    made = aml_v2.resolve_dataset(DatasetConfig("fresh"))

    assert (made.version, made.path) == (1, "fresh")
    (asset,) = aml_v2_service.data_assets["fresh"]
    assert (asset.type, asset.path) == (
        "uri_folder",
        "azureml://datastores/workspaceblobstore/paths/fresh/",
    )
    assert aml_v2.dataset_names() == ["fresh"]


def test_a_version_taken_by_another_creator_meanwhile_makes_the_next(
    aml_v2: AzureMLV2Backend, aml_v2_service: FakeAzureMLV2Service, tmp_path: Path
) -> None:
    upload(aml_v2, tmp_path, "shared/mine", {"a.txt": b"a"})
    create = aml_v2_service.create_data

    def another_creator_first(data: Any) -> Any:
        aml_v2_service.create_data = create  # type: ignore[method-assign]
        with sdk.quiet():
            create(sdk.entities().Data(name="shared", version=data.version, path=data.path))
        return create(data)  # refused: that version exists now

    aml_v2_service.create_data = another_creator_first  # type: ignore[method-assign]

    made = aml_v2.register_dataset("shared", "", "shared/mine")

    assert made.version == 2
    assert [v.version for v in aml_v2_service.data_assets["shared"]] == ["1", "2"]


def test_an_asset_outside_any_datastore_cannot_be_downloaded_here(
    aml_v2: AzureMLV2Backend, aml_v2_service: FakeAzureMLV2Service, tmp_path: Path
) -> None:
    with sdk.quiet():
        aml_v2_service.create_data(
            sdk.entities().Data(name="web", version="1", path="https://example.org/data/")
        )

    with pytest.raises(ConfigurationError, match="not a folder of a datastore"):
        aml_v2.local_dataset_folder(DatasetConfig("web"), tmp_path / "web")


def test_a_registered_datastore_moves_files_with_its_key(
    aml_v2: AzureMLV2Backend, aml_v2_service: FakeAzureMLV2Service, azurite: Azurite, tmp_path: Path
) -> None:
    container = aml_v2_service.datastores["workspaceblobstore"].container_name

    store = aml_v2.register_datastore(
        "mystore",
        container=container,
        account_name=ACCOUNT_NAME,
        account_key=azurite.account_key,
        protocol="http",
    )
    (tmp_path / "f.txt").write_text("x")
    store.upload_folder(tmp_path, "via-mystore", overwrite=True)

    assert "mystore" in aml_v2.datastore_names()
    assert [f.name for f in aml_v2.datastore().list("via-mystore/")] == ["via-mystore/f.txt"]
    with pytest.raises(ConfigurationError, match="exactly one of account_key and sas_token"):
        aml_v2.register_datastore("bad", container=container, account_name=ACCOUNT_NAME)
    with pytest.raises(DatastoreNotFoundError):
        aml_v2.datastore("nowhere")


def test_a_new_version_the_service_refuses_for_another_reason_is_that_error(
    aml_v2: AzureMLV2Backend, aml_v2_service: FakeAzureMLV2Service, tmp_path: Path
) -> None:
    # Before, the backend looked whether the version it asked for existed, and the lookup's
    # "no version 2" replaced the service's own reason.
    from azure.core.exceptions import HttpResponseError

    upload(aml_v2, tmp_path, "shared/first", {"a.txt": b"a"})
    aml_v2.register_dataset("shared", "", "shared/first")

    def refused(data: Any) -> Any:
        raise HttpResponseError(message="(AuthorizationFailed) no write access to data assets")

    aml_v2_service.create_data = refused  # type: ignore[method-assign]

    with pytest.raises(HttpResponseError, match="AuthorizationFailed"):
        aml_v2.register_dataset("shared", "", "shared/first")
