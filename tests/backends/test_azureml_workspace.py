"""Finding the workspace and choosing how to sign in, with real azureml-core objects offline."""

from __future__ import annotations

import json
import logging
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from himl_tasks.backends.azureml_v1.authentication import (
    Authentication,
    AuthenticationKind,
    azureml_authentication,
    choose_authentication,
)
from himl_tasks.backends.azureml_v1.workspace import (
    WorkspaceSettings,
    get_workspace,
    search_folders,
)
from himl_tasks.errors import ConfigurationError, WorkspaceNotFoundError
from himl_tasks.prefect.blocks import AzureMLWorkspace

PASSWORD = "sp-password-" + os.urandom(6).hex()
SP_ENV = {
    "HIML_SERVICE_PRINCIPAL_ID": "app-id",
    "HIML_SERVICE_PRINCIPAL_PASSWORD": PASSWORD,
    "HIML_TENANT_ID": "tenant-id",
}
NO_AZ = {"PATH": "/nonexistent"}


class OfflineOpener:
    """Opens workspaces as the service would, for the ones it knows; records each sign-in."""

    def __init__(self, known: set[str]) -> None:
        self.known = known
        self.opened: list[tuple[WorkspaceSettings, Authentication]] = []

    def __call__(self, settings: WorkspaceSettings, authentication: Authentication) -> Any:
        from azureml.core import Workspace

        if settings.workspace_name not in self.known:
            raise ConfigurationError(f"workspace '{settings.workspace_name}' not found")
        self.opened.append((settings, authentication))
        # Interactive sign-in asks a person at once; the others fetch tokens only when used.
        interactive = authentication.kind is AuthenticationKind.INTERACTIVE
        return Workspace(
            settings.subscription_id,
            settings.resource_group,
            settings.workspace_name,
            auth=object() if interactive else azureml_authentication(authentication),
            _disable_service_check=True,
        )


def write_config(folder: Path, name: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "config.json"
    settings = {"subscription_id": "sub", "resource_group": "rg", "workspace_name": name}
    path.write_text(json.dumps(settings))
    return path


@pytest.fixture
def opener() -> OfflineOpener:
    return OfflineOpener({"from-file", "from-block", "from-search", "from-env"})


def block(name: str = "from-block", password: str = PASSWORD) -> AzureMLWorkspace:
    return AzureMLWorkspace(
        subscription_id="sub",
        resource_group="rg",
        workspace_name=name,
        tenant_id="block-tenant",
        service_principal_id="block-app",
        service_principal_password=SecretStr(password),
    )


def test_each_place_wins_over_the_ones_after_it(tmp_path: Path, opener: OfflineOpener) -> None:
    project = tmp_path / "project"
    write_config(project, "from-search")
    explicit_file = write_config(tmp_path / "elsewhere", "from-file")
    env = {**SP_ENV, "HIML_SUBSCRIPTION_ID": "s", "HIML_RESOURCE_GROUP": "r",
           "HIML_WORKSPACE_NAME": "from-env", **NO_AZ}  # fmt: skip

    def found(**kwargs: Any) -> str:
        workspace = get_workspace(search_from=project, environ=env, opener=opener, **kwargs)
        return str(workspace.name)

    given = opener(WorkspaceSettings("s", "r", "from-file"), choose_authentication(environ=env))
    assert get_workspace(given, explicit_file, block(), opener=opener) is given
    assert found(workspace_config_path=explicit_file, block=block()) == "from-file"
    assert found(block=block()) == "from-block"
    assert found() == "from-search"
    (project / "config.json").unlink()
    assert found() == "from-env"


def test_config_search_stops_at_the_highest_folder_on_pythonpath(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    start = root / "src" / "package"
    start.mkdir(parents=True)
    python_path = os.pathsep.join([str(root / "src"), str(root), "/somewhere/else"])
    assert search_folders(start, python_path) == [start, root / "src", root]
    assert search_folders(start, "")[-1] == Path("/")


def test_config_json_above_the_project_root_is_not_used(
    tmp_path: Path, opener: OfflineOpener
) -> None:
    write_config(tmp_path, "from-search")  # above the project: belongs to something else
    project = tmp_path / "project"
    project.mkdir()
    env = {"PYTHONPATH": str(project), **NO_AZ}
    with pytest.raises(WorkspaceNotFoundError):
        get_workspace(search_from=project, environ=env, opener=opener)
    assert get_workspace(search_from=project, environ=NO_AZ, opener=opener).name == "from-search"


def test_nothing_found_lists_every_place_looked_at(tmp_path: Path, opener: OfflineOpener) -> None:
    env = {"HIML_SUBSCRIPTION_ID": "s", "PYTHONPATH": str(tmp_path), **NO_AZ}
    with pytest.raises(WorkspaceNotFoundError) as raised:
        get_workspace(search_from=tmp_path, environ=env, opener=opener)
    message = str(raised.value)
    for place in ("1. the current AzureML run: not inside one", "2. aml_workspace",
                  "workspace_config_path", "Prefect block",
                  f"config.json in {tmp_path}: not found",
                  "HIML_RESOURCE_GROUP, HIML_WORKSPACE_NAME not set",
                  "not inside one"):  # fmt: skip
        assert place in message
    assert "HIML_SUBSCRIPTION_ID not set" not in message
    assert opener.opened == []


def test_a_broken_config_file_is_named(tmp_path: Path, opener: OfflineOpener) -> None:
    path = tmp_path / "config.json"
    path.write_text('{"subscription_id": "s", "resource_group": "r"}')
    with pytest.raises(ConfigurationError, match="config.json lacks workspace_name"):
        get_workspace(workspace_config_path=path, environ=NO_AZ, opener=opener)
    path.write_text("{not json")
    with pytest.raises(ConfigurationError, match="is not JSON"):
        get_workspace(workspace_config_path=path, environ=NO_AZ, opener=opener)


def test_inside_an_azureml_run_its_own_workspace_comes_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, opener: OfflineOpener
) -> None:
    from azureml.core import Run

    workspace = opener(
        WorkspaceSettings("s", "r", "from-env"), choose_authentication(environ=NO_AZ)
    )

    class RunContext:  # what Run.get_context() returns inside a job (it asks the service)
        class experiment:  # noqa: N801
            pass

    RunContext.experiment.workspace = workspace  # type: ignore[attr-defined]
    monkeypatch.setattr(Run, "get_context", staticmethod(lambda: RunContext()))
    env = {"AZUREML_RUN_ID": "run_1", "PYTHONPATH": str(tmp_path), **NO_AZ}
    assert get_workspace(search_from=tmp_path, environ=env, opener=opener) is workspace
    # As hi-ml: the config.json the job's snapshot carries, or any other place, does not make
    # the job sign in again (health_azure/utils.py get_workspace checks the run first).
    config = write_config(tmp_path, "from-search")
    env = {**env, "HIML_SUBSCRIPTION_ID": "s", "HIML_RESOURCE_GROUP": "r",
           "HIML_WORKSPACE_NAME": "from-env"}  # fmt: skip
    assert get_workspace(search_from=tmp_path, environ=env, opener=opener) is workspace
    assert get_workspace(None, config, block(), environ=env, opener=opener) is workspace
    assert len(opener.opened) == 1  # the test's own opening of the run's workspace, above


def test_a_stale_azureml_run_id_outside_any_run_is_passed_over(
    tmp_path: Path, opener: OfflineOpener
) -> None:
    # Outside a run azureml's Run.get_context() is its _OfflineRun, without an experiment.
    write_config(tmp_path, "from-search")
    env = {"AZUREML_RUN_ID": "stale", "PYTHONPATH": str(tmp_path), **NO_AZ}
    assert get_workspace(search_from=tmp_path, environ=env, opener=opener).name == "from-search"


def test_service_principal_from_environment_variables() -> None:
    from azureml.core.authentication import ServicePrincipalAuthentication

    chosen = choose_authentication(environ={**SP_ENV, **NO_AZ})
    assert chosen.kind is AuthenticationKind.SERVICE_PRINCIPAL
    built = azureml_authentication(chosen)
    assert isinstance(built, ServicePrincipalAuthentication)
    assert (built._service_principal_id, built._tenant_id) == ("app-id", "tenant-id")
    assert PASSWORD not in repr(chosen) + chosen.describe()


def test_a_block_service_principal_wins_and_its_secret_stays_hidden(
    tmp_path: Path, opener: OfflineOpener, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    settings = block()
    workspace = get_workspace(block=settings, environ={**SP_ENV, **NO_AZ}, opener=opener)
    with pytest.raises(ConfigurationError) as raised:  # the real opener; no Azure here
        get_workspace(block=block("unknown"), environ=NO_AZ)
    assert "could not open AzureML workspace 'unknown'" in str(raised.value)
    assert "service principal block-app" in str(raised.value)
    assert PASSWORD not in str(raised.value)
    _, authentication = opener.opened[-1]
    assert workspace.name == "from-block"
    assert authentication.service_principal is not None
    assert authentication.service_principal.application_id == "block-app"
    assert authentication.tenant_id == "block-tenant"
    for text in (repr(settings), str(settings.model_dump()), repr(authentication), caplog.text):
        assert PASSWORD not in text


def test_a_partial_service_principal_is_an_error_naming_what_is_missing() -> None:
    env = {"HIML_SERVICE_PRINCIPAL_ID": "app-id", **NO_AZ}
    with pytest.raises(ConfigurationError) as raised:
        choose_authentication(environ=env)
    assert "HIML_SERVICE_PRINCIPAL_PASSWORD, HIML_TENANT_ID are not set" in str(raised.value)


def test_azure_cli_when_az_is_on_path_else_interactive(tmp_path: Path) -> None:
    from azureml.core.authentication import TokenAuthentication

    az = tmp_path / "az"
    az.write_text("#!/bin/sh\nexit 1\n")
    az.chmod(az.stat().st_mode | stat.S_IEXEC)
    cli = choose_authentication(environ={"PATH": str(tmp_path), "HIML_TENANT_ID": "t"})
    assert cli.kind is AuthenticationKind.AZURE_CLI
    assert isinstance(azureml_authentication(cli), TokenAuthentication)
    interactive = choose_authentication(environ={**NO_AZ, "HIML_TENANT_ID": "t"})
    assert interactive.kind is AuthenticationKind.INTERACTIVE
    assert interactive.tenant_id == "t"
