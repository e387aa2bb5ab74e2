"""`himl --workspace <saved block>`: the block read from a real Prefect API (the session's test
server), by a `himl` that never imports Prefect, run as a real process."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from pydantic import SecretStr

from himl_tasks.backends.azureml_v1.authentication import Authentication
from himl_tasks.backends.azureml_v1.workspace import WorkspaceSettings, get_workspace
from himl_tasks.backends.local.backend import LocalBackend
from himl_tasks.backends.prefect_api import find_prefect_api
from himl_tasks.cli.saved_blocks import AzureMLBlock
from himl_tasks.errors import ConfigurationError
from tests.answering_server import answering
from tests.cli.conftest import project, submit

SECRET = "s3cret-never-printed-7f3a"


@pytest.fixture
def api_url(prefect_api: None) -> str:
    """The test Prefect server's API URL (the harness sets it in this process's settings)."""
    from prefect.settings import PREFECT_API_URL

    url = PREFECT_API_URL.value()
    assert url
    return str(url)


def _name() -> str:
    return f"ws-{uuid.uuid4().hex[:10]}"


def _himl(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """`himl ARGS` in a fresh process, with a Prefect home of its own and `env` set."""
    return _run([sys.executable, "-m", "himl_tasks.cli", *args], cwd, env)


def _run(command: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """A console script in a fresh process: no PREFECT_* or HIML_* setting but `env`'s."""
    environ = {
        key: value for key, value in os.environ.items() if not key.startswith(("PREFECT_", "HIML_"))
    }
    environ |= {"PREFECT_HOME": str(cwd / "prefect-home"), **env}
    return subprocess.run(
        command,
        capture_output=True, text=True, env=environ, cwd=cwd, timeout=120, check=False,
    )  # fmt: skip


def test_status_on_a_saved_local_workspace_block(api_url: str, tmp_path: Path) -> None:
    from himl_tasks.prefect.blocks import LocalWorkspace

    saved, other = LocalBackend(tmp_path / "saved"), LocalBackend(tmp_path / "other")
    folder = project(tmp_path)
    mine = [submit(saved, folder, display_name=f"mine-{i}") for i in range(2)]
    theirs = submit(other, folder, display_name="theirs")
    for ref in mine:
        saved.wait(ref, timeout=60)
    other.wait(theirs, timeout=60)
    name = _name()
    LocalWorkspace(root=str(saved.root)).save(name)

    typed = _himl(
        "status", "all", "--json", "--workspace", f"local-workspace/{name}",
        cwd=tmp_path, PREFECT_API_URL=api_url, HIML_HOME=str(other.root),
    )  # fmt: skip
    assert typed.returncode == 0, typed.stderr
    assert [row["run_id"] for row in json.loads(typed.stdout)] == [r.run_id for r in mine]

    download = _run(
        [str(Path(sys.executable).parent / "himl-download"), "--config_file",
         f"local-workspace/{name}", "--run_ids", mine[0].run_id, "--output_dir", "got"],
        tmp_path, {"PREFECT_API_URL": api_url},
    )  # fmt: skip
    assert download.returncode == 0, download.stderr
    assert (tmp_path / "got" / mine[0].run_id / "outputs" / "model.txt").is_file()

    # A bare name, and the API URL from the active profile of the Prefect home.
    home = tmp_path / "prefect-home"
    home.mkdir()
    (home / "profiles.toml").write_text(
        f'active = "test"\n\n[profiles.test]\nPREFECT_API_URL = "{api_url}"\n', encoding="utf-8"
    )
    bare = _himl("--workspace", name, "status", "mine-1", cwd=tmp_path)
    assert bare.returncode == 0, bare.stderr
    assert mine[1].run_id in bare.stdout and mine[0].run_id not in bare.stdout


def test_an_unknown_or_ambiguous_block_name(api_url: str, tmp_path: Path) -> None:
    from himl_tasks.prefect.blocks import AzureMLWorkspace, LocalWorkspace

    unknown = _himl(
        "--workspace", "local-workspace/no-such-block", "status", "all",
        cwd=tmp_path, PREFECT_API_URL=api_url,
    )  # fmt: skip
    assert unknown.returncode == 2 and unknown.stdout == ""
    assert unknown.stderr.splitlines() == [
        "himl: no workspace 'local-workspace/no-such-block': no file or folder of that name, "
        f"and no local-workspace block 'no-such-block' is saved on the Prefect server at "
        f"{api_url} (from PREFECT_API_URL); save one, e.g. "
        "`LocalWorkspace(root='.himl').save('no-such-block')`"
    ]

    name = _name()
    LocalWorkspace(root=str(tmp_path / "ws")).save(name)
    AzureMLWorkspace(subscription_id="s", resource_group="g", workspace_name="w").save(name)
    both = _himl("--workspace", name, "status", "all", cwd=tmp_path, PREFECT_API_URL=api_url)
    assert both.returncode == 2
    assert both.stderr.splitlines() == [
        f"himl: '{name}' is ambiguous: 'local-workspace/{name}' and "
        f"'azureml-workspace/{name}' are saved; write one"
    ]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_prefect_api_that_is_down_or_not_configured(tmp_path: Path) -> None:
    down_url = f"http://127.0.0.1:{_free_port()}/api"
    down = _himl(
        "--workspace", "local-workspace/demo", "status", "all",
        cwd=tmp_path, PREFECT_API_URL=down_url,
    )  # fmt: skip
    assert down.returncode == 2 and "Traceback" not in down.stderr
    [line] = down.stderr.splitlines()
    assert line.startswith(
        f"himl: cannot read saved block 'local-workspace/demo': the Prefect API at {down_url} "
        "(from PREFECT_API_URL) did not answer (ConnectError: "
    )
    assert "set PREFECT_API_URL" in line

    unset = _himl("--workspace", "demo", "status", "all", cwd=tmp_path)
    assert unset.returncode == 2
    assert unset.stderr.splitlines() == [
        "himl: no Prefect API is configured (PREFECT_API_URL unset, no profile in "
        f"{tmp_path / 'prefect-home' / 'profiles.toml'}): set PREFECT_API_URL (e.g. `export "
        "PREFECT_API_URL=http://127.0.0.1:4200/api` for a `prefect server start` on this "
        "machine), or `prefect config set PREFECT_API_URL=...` in the active profile"
    ]


def test_an_azureml_blocks_secret_is_never_printed(api_url: str, tmp_path: Path) -> None:
    from himl_tasks.prefect.blocks import AzureMLWorkspace

    name = _name()
    AzureMLWorkspace(
        subscription_id="sub",
        resource_group="group",
        workspace_name="ws",
        service_principal_id="app-id",
        service_principal_password=SecretStr(SECRET),
    ).save(name)  # no tenant_id: refused before signing in, after the secret was read

    result = _himl(
        "--workspace", f"azureml-workspace/{name}", "status", "all",
        cwd=tmp_path, PREFECT_API_URL=api_url,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "himl: the workspace block has a service principal but no tenant_id; set tenant_id"
    ]
    assert SECRET not in result.stdout + result.stderr


def test_an_azureml_block_signs_in_through_the_workspace_settings_path() -> None:
    block = AzureMLBlock("sub", "group", "ws", "tenant", "app-id", SecretStr(SECRET))
    opened: list[tuple[WorkspaceSettings, Authentication]] = []

    def opener(settings: WorkspaceSettings, authentication: Authentication) -> str:
        opened.append((settings, authentication))
        return "the workspace"

    assert get_workspace(block=block, opener=opener, environ={}) == "the workspace"
    [(settings, authentication)] = opened
    assert settings == WorkspaceSettings("sub", "group", "ws")
    principal = authentication.service_principal
    assert principal is not None and principal.password.get_secret_value() == SECRET
    assert principal.application_id == "app-id" and principal.tenant_id == "tenant"
    assert SECRET not in repr(block) + repr(authentication) + authentication.describe()


def test_the_api_from_the_environment_else_the_active_profile(tmp_path: Path) -> None:
    profiles = tmp_path / "profiles.toml"
    profiles.write_text(
        'active = "one"\n[profiles.one]\nPREFECT_API_URL = "http://one/api/"\n'
        'PREFECT_API_KEY = "key-1"\n[profiles.two]\nPREFECT_API_URL = "http://two/api"\n'
        'PREFECT_API_AUTH_STRING = "admin:pass"\n',
        encoding="utf-8",
    )
    home = {"PREFECT_HOME": str(tmp_path)}

    one = find_prefect_api(home)
    assert (one.url, one.headers()) == ("http://one/api", {"Authorization": "Bearer key-1"})
    assert one.source == f"profile 'one' in {profiles}" and "key-1" not in repr(one)
    two = find_prefect_api({**home, "PREFECT_PROFILE": "two"})
    assert two.headers() == {"Authorization": "Basic YWRtaW46cGFzcw=="}  # admin:pass
    env = find_prefect_api({**home, "PREFECT_API_URL": "http://env/api"})
    assert (env.url, env.source) == ("http://env/api", "PREFECT_API_URL")
    moved = find_prefect_api({"PREFECT_PROFILES_PATH": str(profiles), "PREFECT_HOME": "/nowhere"})
    assert moved.url == "http://one/api"

    profiles.write_text("active = [", encoding="utf-8")
    with pytest.raises(ConfigurationError, match=r"profiles file .* cannot be read"):
        find_prefect_api(home)


def test_reading_a_block_imports_no_prefect(tmp_path: Path) -> None:
    # himl_tasks/cli never imports Prefect (DESIGN.md), nor httpx until a block is read.
    probe = (
        "import atexit, sys\n"
        "atexit.register(lambda: print(sorted({'httpx', 'prefect'} & set(sys.modules))))\n"
        "from himl_tasks.cli.app import run\n"
        "run()\n"
    )
    down = {"PREFECT_API_URL": f"http://127.0.0.1:{_free_port()}/api"}
    block = _run([sys.executable, "-c", probe, "-w", "demo", "status", "all"], tmp_path, down)
    plain = _run([sys.executable, "-c", probe, "status", "all"], tmp_path, down)
    assert "did not answer" in block.stderr and block.stdout == "['httpx']\n"
    assert "no run matches 'all'" in plain.stderr and plain.stdout == "[]\n"


@pytest.mark.parametrize(
    ("status", "body", "message"),
    [
        (200, b"<html>a proxy's page</html>", "answered with no block document"),
        (200, b'{"data": "not a mapping"}', "a block document without data"),
        (500, b"{}", "answered HTTP 500; is it a Prefect 3 API?"),
        (401, b"{}", "refused (HTTP 401); set PREFECT_API_KEY or PREFECT_API_AUTH_STRING"),
    ],
)
def test_an_api_that_answers_no_block_document(
    status: int, body: bytes, message: str, tmp_path: Path
) -> None:
    # Something else at the URL (a proxy, another service) was an AttributeError traceback.
    with answering(lambda path: (status, {}, body)) as url:
        result = _himl("-w", "local-workspace/demo", "status", "all", cwd=tmp_path,
                       PREFECT_API_URL=url)  # fmt: skip
    assert result.returncode == 2 and "Traceback" not in result.stderr
    [line] = result.stderr.splitlines()
    assert line.startswith("himl: cannot read saved block 'local-workspace/demo': the Prefect")
    assert message in line


def test_a_saved_v2_block_opens_the_v2_backend_on_its_workspace(api_url: str) -> None:
    # The block names its SDK: one saved with sdk="v2" is reached through azure-ai-ml, signed in
    # with its service principal (the MLClient is made offline; nothing is called yet).
    from himl_tasks.backends.azureml_v2 import AzureMLV2Backend
    from himl_tasks.cli.saved_blocks import backend_of_saved_block
    from himl_tasks.prefect.blocks import AzureMLWorkspace

    name = _name()
    AzureMLWorkspace(
        sdk="v2",
        subscription_id="sub",
        resource_group="group",
        workspace_name="ws",
        tenant_id="tenant",
        service_principal_id="app-id",
        service_principal_password=SecretStr(SECRET),
    ).save(name)

    backend = backend_of_saved_block(f"azureml-workspace/{name}", {"PREFECT_API_URL": api_url})

    assert isinstance(backend, AzureMLV2Backend)
    client = backend.service.ml_client  # type: ignore[attr-defined]
    assert (client.subscription_id, client.resource_group_name, client.workspace_name) == (
        "sub", "group", "ws"
    )  # fmt: skip
    assert SECRET not in repr(backend)
