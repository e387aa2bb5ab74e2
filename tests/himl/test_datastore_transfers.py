"""hi-ml's upload_to_datastore / download_from_datastore on a local workspace's datastores."""

from __future__ import annotations

from pathlib import Path

import pytest
from azure.storage.blob import ContainerClient

from himl_tasks import (
    ConfigurationError,
    DatastoreNotFoundError,
    LocalWorkspaceConfig,
    download_from_datastore,
    upload_to_datastore,
)
from himl_tasks.backends.azureml_v1 import AzureMLV1Backend
from himl_tasks.errors import InvalidInputError
from himl_tasks.testing.azurite import Azurite
from tests.backends.azureml_service import DEFAULT_DATASTORE, FakeAzureMLService
from tests.conftest import read_tree, write_tree
from tests.himl.workspace_places import WORKSPACE_VARIABLES, AzureMLSeam, write_config_json


def declare(root: Path, text: str) -> LocalWorkspaceConfig:
    root.mkdir(parents=True, exist_ok=True)
    (root / "datastores.toml").write_text(text)
    return LocalWorkspaceConfig.load(root)


def test_round_trip_through_the_default_datastore_found_by_himl_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HIML_HOME", str(tmp_path / "ws"))
    folder = write_tree(tmp_path / "foo" / "bar", {"1.txt": b"1", "a/2.txt": b"2"})

    up = upload_to_datastore("", folder, "baz")
    down = download_from_datastore("workspaceblobstore", "baz", tmp_path / "outputs")

    assert (up.files, down.files) == (2, 2)
    assert read_tree(tmp_path / "ws" / "datastores" / "workspaceblobstore") == {
        "baz/1.txt": b"1",
        "baz/a/2.txt": b"2",
    }
    assert read_tree(tmp_path / "outputs") == {"baz/1.txt": b"1", "baz/a/2.txt": b"2"}


def test_a_blob_datastore_declared_with_a_secret_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, azurite: Azurite, container: ContainerClient
) -> None:
    monkeypatch.setenv("IMAGES_CONNECTION", azurite.connection_string)
    workspace = declare(
        tmp_path / "ws",
        f"""
        [datastores.images]
        account_url = "{azurite.account_url}"
        container = "{container.container_name}"
        connection_string_env = "IMAGES_CONNECTION"
        """,
    )
    folder = write_tree(tmp_path / "src", {"x.png": b"png"})

    upload_to_datastore("images", folder, "raw", workspace)
    report = download_from_datastore(
        "images", "raw/", tmp_path / "out", workspace, validate_checksum=True
    )

    assert [b.name for b in container.list_blobs()] == ["raw/x.png"]
    assert (report.files, report.unverified) == (1, [])
    assert workspace.datastore_names() == ["workspaceblobstore", "images"]


def test_an_unknown_datastore_name_lists_the_known_ones(tmp_path: Path) -> None:
    workspace = declare(tmp_path / "ws", '[datastores.scratch]\npath = "scratch"\n')

    with pytest.raises(
        DatastoreNotFoundError, match="'imgs'.*known datastores: workspaceblobstore, scratch"
    ):
        upload_to_datastore("imgs", write_tree(tmp_path / "s", {"a": b"a"}), "d", workspace)


def test_a_missing_secret_variable_is_named_without_a_value(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("IMAGES_SAS", raising=False)
    workspace = declare(
        tmp_path / "ws",
        '[datastores.images]\naccount_url = "https://a.blob.core.windows.net"\n'
        'container = "c"\nsas_token_env = "IMAGES_SAS"\n',
    )
    with pytest.raises(ConfigurationError, match="environment variable IMAGES_SAS is not set"):
        workspace.datastore("images")


@pytest.mark.parametrize(
    "entry",
    [
        'account_url = "https://a"\ncontainer = "c"',
        'account_url = "https://a"\ncontainer = "c"\nsas_token_env = "X"\n'
        "use_azure_identity = true",
        'container = "c"\nsas_token_env = "X"',
    ],
)
def test_incomplete_blob_entries_say_what_is_needed(tmp_path: Path, entry: str) -> None:
    workspace = declare(tmp_path / "ws", f"[datastores.images]\n{entry}\n")
    with pytest.raises(ConfigurationError, match="exactly one of connection_string_env"):
        workspace.datastore("images")


def test_an_explicit_config_file_that_does_not_exist(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="does not exist"):
        upload_to_datastore("", tmp_path, "d", workspace_config_path=tmp_path / "nope.toml")


# ---- hi-ml's arguments and the workspace order (himl_tasks.himl.workspace_resolution) -------


def test_a_config_json_found_upward_sends_files_to_azureml_not_the_local_folder(
    cwd_project: Path, seam: AzureMLSeam, aml_service: FakeAzureMLService
) -> None:
    config_json = write_config_json(cwd_project)
    folder = write_tree(cwd_project / "data", {"1.txt": b"1", "a/2.txt": b"2"})

    upload_to_datastore("", folder, "raw")
    download_from_datastore("", "raw/a", cwd_project / "back")

    assert read_tree(cwd_project / "back") == {"raw/a/2.txt": b"2"}
    assert sorted(f.name for f in aml_service.store(DEFAULT_DATASTORE).list("raw/")) == [
        "raw/1.txt",
        "raw/a/2.txt",
    ]
    assert seam.calls == [{"aml_workspace": None, "config": config_json}] * 2
    assert not (cwd_project / ".himl").exists()  # nothing went to a local workspace


def test_hi_mls_aml_workspace_and_an_azureml_config_json_argument(
    cwd_project: Path, aml: AzureMLV1Backend, seam: AzureMLSeam, aml_service: FakeAzureMLService
) -> None:
    folder = write_tree(cwd_project / "data", {"x.csv": b"x"})
    config_json = write_config_json(cwd_project / "..")

    upload_to_datastore("", folder, "by-config", workspace_config_path=config_json)
    upload_to_datastore("", folder, "by-object", aml_workspace=aml)
    with pytest.raises(InvalidInputError, match="aml_workspace .* or workspace, not both"):
        upload_to_datastore("", folder, "twice", aml_workspace=aml, workspace=aml)

    names = sorted(f.name for f in aml_service.store(DEFAULT_DATASTORE).list(""))
    assert names == ["by-config/x.csv", "by-object/x.csv"]
    assert seam.calls == [{"aml_workspace": None, "config": config_json}]


def test_inside_a_local_run_its_workspace_holds_the_files(
    cwd_project: Path, seam: AzureMLSeam, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_config_json(cwd_project)  # in the run's snapshot; the run's workspace wins
    monkeypatch.setenv("HIML_WORKSPACE", str(cwd_project / "job-ws"))
    folder = write_tree(cwd_project / "data", {"x.csv": b"x"})

    upload_to_datastore("", folder, "from-job")

    stored = cwd_project / "job-ws" / "datastores" / "workspaceblobstore"
    assert read_tree(stored) == {"from-job/x.csv": b"x"}
    assert seam.calls == []


def test_the_himl_workspace_variables_send_files_to_azureml(
    cwd_project: Path,
    seam: AzureMLSeam,
    aml_service: FakeAzureMLService,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in WORKSPACE_VARIABLES.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("HIML_HOME", str(cwd_project / "home"))  # a local workspace, not used
    folder = write_tree(cwd_project / "data", {"x.csv": b"x"})

    upload_to_datastore("", folder, "by-variables")

    assert [f.name for f in aml_service.store(DEFAULT_DATASTORE).list("")] == ["by-variables/x.csv"]
    assert seam.calls == [{"aml_workspace": None, "config": None}]
    assert not (cwd_project / "home").exists()


def test_with_no_place_set_the_files_go_to_the_local_workspace_here(
    cwd_project: Path, seam: AzureMLSeam
) -> None:
    folder = write_tree(cwd_project / "data", {"x.csv": b"x"})

    upload_to_datastore("", folder, "local")

    stored = cwd_project / ".himl" / "datastores" / "workspaceblobstore"
    assert read_tree(stored) == {"local/x.csv": b"x"}
    assert seam.calls == []
