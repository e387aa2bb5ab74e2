"""resolve_backend: hi-ml's places for a workspace, in order, the local workspace only last."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from himl_tasks.backends.azureml_v1 import AzureMLV1Backend
from himl_tasks.backends.local.backend import LocalBackend
from himl_tasks.backends.local.workspace_config import LocalWorkspaceConfig
from himl_tasks.errors import ConfigurationError, InvalidInputError
from himl_tasks.himl.workspace_resolution import resolve_backend
from tests.himl.workspace_places import (
    WORKSPACE_VARIABLES,
    seam_to,
    write_config_json,
)


def test_a_given_workspace_is_used_as_hi_ml_gives_it(
    cwd_project: Path,
    aml: AzureMLV1Backend,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from azureml.core import Workspace

    seam = seam_to(aml, monkeypatch)
    write_config_json(cwd_project)  # a later place: never looked at
    local = LocalBackend(cwd_project / "ws")
    assert resolve_backend(local) is local
    config = LocalWorkspaceConfig.load(cwd_project / "ws2")
    from_config = resolve_backend(config)
    assert isinstance(from_config, LocalBackend) and from_config.root == config.root
    workspace = Workspace("sub", "rg", "ws", auth=object(), _disable_service_check=True)
    assert resolve_backend(workspace) is aml
    assert seam.calls == [{"aml_workspace": workspace, "config": None}]
    with pytest.raises(InvalidInputError, match="not str"):
        resolve_backend("ws")


def test_a_given_config_file_is_an_azureml_config_json_or_a_local_datastores_file(
    cwd_project: Path,
    aml: AzureMLV1Backend,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seam = seam_to(aml, monkeypatch)
    config_json = write_config_json(cwd_project)
    assert resolve_backend(workspace_config_path=config_json) is aml
    assert seam.calls == [{"aml_workspace": None, "config": config_json}]

    toml = cwd_project / "stores.toml"
    toml.write_text('[datastores.scratch]\npath = "scratch"\n')
    local = resolve_backend(workspace_config_path=toml)
    assert isinstance(local, LocalBackend)
    assert local.workspace.datastore_names() == ["workspaceblobstore", "scratch"]

    broken = cwd_project / "broken.json"
    broken.write_text('{"subscription_id": "s", "resource_group": "r"}')
    with pytest.raises(ConfigurationError, match="lacks workspace_name"):
        resolve_backend(workspace_config_path=broken)
    neither = cwd_project / "notes.txt"
    neither.write_text("subscription: s\n")
    with pytest.raises(ConfigurationError, match=r"notes.txt is neither an AzureML config.json"):
        resolve_backend(workspace_config_path=neither)
    with pytest.raises(ConfigurationError, match="does not exist"):
        resolve_backend(workspace_config_path=cwd_project / "missing.json")
    assert len(seam.calls) == 1


def test_inside_an_azureml_run_its_workspace_wins_over_the_snapshots_config_json(
    cwd_project: Path,
    aml: AzureMLV1Backend,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seam = seam_to(aml, monkeypatch)
    write_config_json(cwd_project)  # users keep it beside the script: it is in the snapshot
    monkeypatch.setenv("AZUREML_RUN_ID", "train_1700000000_ab12cd34")

    assert resolve_backend() is aml
    # No config file passed: get_workspace then gives the current run's workspace first.
    assert seam.calls == [{"aml_workspace": None, "config": None}]


def test_inside_a_local_run_its_workspace_wins_over_a_config_json(
    cwd_project: Path,
    aml: AzureMLV1Backend,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seam = seam_to(aml, monkeypatch)
    write_config_json(cwd_project)
    monkeypatch.setenv("HIML_WORKSPACE", str(cwd_project / "job-workspace"))

    found = resolve_backend()

    assert isinstance(found, LocalBackend) and found.root == cwd_project / "job-workspace"
    assert seam.calls == []


def test_a_config_json_found_upward_is_azureml_never_the_local_folder(
    cwd_project: Path,
    aml: AzureMLV1Backend,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seam = seam_to(aml, monkeypatch)
    config_json = write_config_json(cwd_project)
    below = cwd_project / "src" / "pkg"
    below.mkdir(parents=True)
    monkeypatch.chdir(below)

    assert resolve_backend() is aml
    assert seam.calls == [{"aml_workspace": None, "config": config_json}]
    assert not (below / ".himl").exists()


def test_a_failing_azureml_sign_in_is_an_error_not_a_fall_back(
    cwd_project: Path,
    aml: AzureMLV1Backend,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seam = seam_to(aml, monkeypatch)
    seam.error = ConfigurationError("could not open AzureML workspace 'ws' signing in with cli")
    write_config_json(cwd_project)

    with pytest.raises(ConfigurationError, match="could not open AzureML workspace"):
        resolve_backend()
    assert not (cwd_project / ".himl").exists()


def test_the_himl_workspace_variables_are_azureml_all_three_or_an_error(
    cwd_project: Path,
    aml: AzureMLV1Backend,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seam = seam_to(aml, monkeypatch)
    monkeypatch.setenv("HIML_SUBSCRIPTION_ID", WORKSPACE_VARIABLES["HIML_SUBSCRIPTION_ID"])
    with pytest.raises(ConfigurationError, match="HIML_RESOURCE_GROUP, HIML_WORKSPACE_NAME not"):
        resolve_backend()
    for name, value in WORKSPACE_VARIABLES.items():
        monkeypatch.setenv(name, value)

    assert resolve_backend() is aml
    assert seam.calls == [{"aml_workspace": None, "config": None}]


def test_with_no_place_set_the_local_workspace_is_used_and_said(
    cwd_project: Path,
    aml: AzureMLV1Backend,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    seam = seam_to(aml, monkeypatch)
    monkeypatch.setenv("HIML_HOME", str(cwd_project / "home"))

    with caplog.at_level(logging.INFO, logger="himl_tasks.himl.workspace_resolution"):
        found = resolve_backend()

    assert isinstance(found, LocalBackend) and found.root == cwd_project / "home"
    assert seam.calls == []
    [record] = caplog.records
    assert "using the local workspace at" in record.getMessage()
    assert "config.json" in record.getMessage()


def test_azureml_is_reached_through_sdk_v2_unless_v1_is_asked_for(
    cwd_project: Path,
    aml: AzureMLV1Backend,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seam = seam_to(aml, monkeypatch)
    config_json = write_config_json(cwd_project)
    assert resolve_backend() is aml
    assert resolve_backend(workspace_config_path=config_json) is aml
    assert resolve_backend(sdk="v1") is aml
    assert resolve_backend(workspace_config_path=config_json, sdk="v1") is aml
    assert seam.sdks == ["v2", "v2", "v1", "v1"]
    with pytest.raises(InvalidInputError, match="sdk must be 'v1' .* or 'v2' .*, not 'v3'"):
        resolve_backend(sdk="v3")  # type: ignore[arg-type]
    assert len(seam.calls) == 4


def test_inside_a_job_submitted_with_sdk_v1_the_run_keeps_to_v1(
    cwd_project: Path,
    aml: AzureMLV1Backend,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seam = seam_to(aml, monkeypatch)
    monkeypatch.setenv("AZUREML_RUN_ID", "train_1700000000_ab12cd34")
    monkeypatch.setenv("HIML_IN_JOB", "himl_tasks.backends.azureml_v1.in_job")
    assert resolve_backend() is aml
    monkeypatch.delenv("HIML_IN_JOB")  # a job himl-tasks did not submit with v1
    assert resolve_backend() is aml
    assert seam.sdks == ["v1", "v2"]


def test_a_given_workspace_object_says_which_sdk(
    cwd_project: Path,
    aml: AzureMLV1Backend,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from azure.identity import AzureCliCredential
    from azureml.core import Workspace

    from himl_tasks.backends.azureml_v2 import sdk
    from himl_tasks.himl.azureml_workspace import sdk_of

    with sdk.quiet():
        client = sdk.ml().MLClient(AzureCliCredential(), "sub", "rg", "ws")
    workspace = Workspace("sub", "rg", "ws", auth=object(), _disable_service_check=True)
    assert [sdk_of(client, "v1"), sdk_of(workspace, "v2")] == ["v2", "v1"]
    assert [sdk_of(None, "v1"), sdk_of(None, "v2")] == ["v1", "v2"]
    seam = seam_to(aml, monkeypatch)
    assert resolve_backend(client, sdk="v1") is aml  # an MLClient reaches the door's seam
    assert seam.calls == [{"aml_workspace": client, "config": None}]
