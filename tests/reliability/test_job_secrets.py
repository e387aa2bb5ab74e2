"""Secrets on the local backend: out of a job's reach, out of every record.

A real job inspects its own environment and its supervisor's (`/proc/<ppid>/environ` and
`cmdline`); the registry's bytes, the run's folder and its logs are searched for the values.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from himl_tasks.backends.local.backend import LocalBackend
from himl_tasks.backends.local.workspace_config import LocalWorkspaceConfig
from himl_tasks.errors import ConfigurationError, InvalidInputError
from himl_tasks.job_spec import JobSpec
from himl_tasks.jobs.identity import job_identity
from himl_tasks.runs import FailureKind
from himl_tasks.secret_reference import SecretReference
from tests.backends.conftest import write_script

PACKAGE_PARENT = Path(__file__).resolve().parents[2]
DATASTORE_KEY = "datastore-key-3f9a1c"
JOB_TOKEN = "job-token-77d2e0"
UNRELATED = "unrelated-secret-c41b"
SECRETS = (DATASTORE_KEY, JOB_TOKEN, UNRELATED)

# Writes what it can see, as booleans and names only: the values must not reach the log.
PROBE = """\
import json, os, sys
from pathlib import Path
secrets = sys.argv[2:]
parent = Path(f"/proc/{os.getppid()}")
try:  # a supervisor refuses inspection: to a user other than root its environ is unreadable
    parent_environ = (parent / "environ").read_bytes()
except PermissionError:
    parent_environ = b""
seen = {
    "parent_environ": [s for s in secrets if s.encode() in parent_environ],
    "parent_cmdline": [s for s in secrets if s.encode() in (parent / "cmdline").read_bytes()],
    "own_environ": [s for s in secrets if any(s in v for v in os.environ.values())],
    "parent_is_supervisor": b"supervisor" in (parent / "cmdline").read_bytes(),
    "token_matches": os.environ.get("API_TOKEN") == secrets[1],
    "variables": sorted(os.environ),
}
Path(sys.argv[1]).write_text(json.dumps(seen))
"""


@pytest.fixture
def secret_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The submitter holds a datastore key, a job's token and a secret nobody asked for."""
    monkeypatch.setenv("STORE_CONNECTION", DATASTORE_KEY)
    monkeypatch.setenv("MY_API_TOKEN", JOB_TOKEN)
    monkeypatch.setenv("UNRELATED_SECRET", UNRELATED)


def workspace_with_keyed_datastore(tmp_path: Path) -> Path:
    """A local workspace whose datastore `images` takes its key from $STORE_CONNECTION."""
    root = tmp_path / "workspace"
    root.mkdir()
    (root / "datastores.toml").write_text(
        '[datastores.images]\naccount_url = "http://127.0.0.1:1/devstoreaccount1"\n'
        'container = "images"\nconnection_string_env = "STORE_CONNECTION"\n'
    )
    return root


def test_a_job_sees_only_its_own_secret_and_its_supervisor_holds_none_in_reach(
    tmp_path: Path, secret_environment: None
) -> None:
    root = workspace_with_keyed_datastore(tmp_path)
    backend = LocalBackend(root)
    project = tmp_path / "project"
    write_script(project, "probe.py", PROBE)
    seen_file = tmp_path / "seen.json"
    spec = JobSpec(
        entry_script="probe.py",
        args=[str(seen_file), *SECRETS],
        snapshot_root=project,
        environment_variables={"API_TOKEN": SecretReference("MY_API_TOKEN"), "MODE": "probe"},
    )

    ref = backend.submit(spec)
    state = backend.wait(ref, timeout=30)

    assert state.succeeded, state.error
    seen = json.loads(seen_file.read_text())
    assert seen["parent_is_supervisor"]
    assert seen["parent_environ"] == [] and seen["parent_cmdline"] == []
    assert seen["own_environ"] == [JOB_TOKEN] and seen["token_matches"]
    assert "UNRELATED_SECRET" not in seen["variables"]
    assert "STORE_CONNECTION" not in seen["variables"] and "MODE" in seen["variables"]


def test_no_record_of_a_run_holds_a_secret_value(tmp_path: Path, secret_environment: None) -> None:
    backend = LocalBackend(tmp_path / "workspace")
    project = tmp_path / "project"
    write_script(project, "hi.py", "import os\nprint('token length', len(os.environ['T']))\n")
    spec = JobSpec(
        entry_script="hi.py",
        snapshot_root=project,
        environment_variables={"T": SecretReference("MY_API_TOKEN")},
    )

    ref = backend.submit(spec)
    assert backend.wait(ref, timeout=30).succeeded
    assert list(backend.iter_logs(ref)) == [f"token length {len(JOB_TOKEN)}"]

    recorded = [p for p in backend.root.rglob("*") if p.is_file()]
    assert any(p.name.startswith("registry.sqlite") for p in recorded)
    for path in recorded:
        data = path.read_bytes()
        assert not any(secret.encode() in data for secret in SECRETS), path
    row = backend.registry.get_run(ref.run_id)
    assert row is not None and row.launch_plan.secret_variables == {"T": "MY_API_TOKEN"}
    assert JOB_TOKEN not in row.launch_plan_json
    assert JOB_TOKEN not in spec.to_json()
    assert JOB_TOKEN not in job_identity(backend.plan(spec))
    again = JobSpec.from_json(spec.to_json()).environment_variables
    assert again == {"T": SecretReference("MY_API_TOKEN")}


def test_a_secret_reference_to_an_unset_variable_is_refused_before_anything_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NOT_SET_ANYWHERE", raising=False)
    backend = LocalBackend(tmp_path / "workspace")
    project = tmp_path / "project"
    write_script(project, "hi.py", "print('hi')\n")
    spec = JobSpec(
        entry_script="hi.py",
        snapshot_root=project,
        environment_variables={"T": SecretReference("NOT_SET_ANYWHERE")},
    )

    with pytest.raises(ConfigurationError, match="NOT_SET_ANYWHERE is not set"):
        backend.submit(spec)

    assert backend.registry.runs() == []
    assert not (backend.root / "runs").exists()
    with pytest.raises(InvalidInputError, match="name an environment variable"):
        SecretReference("not a name")


def test_a_queued_run_gets_its_secret_from_its_submitter_when_its_turn_comes(
    tmp_path: Path, secret_environment: None
) -> None:
    backend = LocalBackend(tmp_path / "workspace")
    backend.create_compute_cluster("one", max_concurrent_runs=1)
    project = tmp_path / "project"
    write_script(project, "wait.py", "import time\ntime.sleep(1)\n")
    write_script(project, "check.py", f"import os\nassert os.environ['T'] == {JOB_TOKEN!r}\n")
    first = backend.submit(JobSpec(entry_script="wait.py", compute="one", snapshot_root=project))
    queued = backend.submit(
        JobSpec(
            entry_script="check.py",
            compute="one",
            snapshot_root=project,
            environment_variables={"T": SecretReference("MY_API_TOKEN")},
        )
    )
    assert backend.get_state(queued).status.value == "Queued"

    assert backend.wait(first, timeout=30).succeeded
    state = backend.wait(queued, timeout=30)

    assert state.succeeded, state.error


SUBMIT_AND_LEAVE = """\
import sys
from himl_tasks.backends.local.backend import LocalBackend
from himl_tasks.job_spec import JobSpec
from himl_tasks.secret_reference import SecretReference

root, project = sys.argv[1:3]
spec = JobSpec(entry_script="hi.py", compute="one", snapshot_root=project,
               environment_variables={"T": SecretReference("MY_API_TOKEN")})
print(LocalBackend(root).submit(spec).run_id)
"""


def test_a_queued_run_whose_submitter_left_with_its_secret_fails_saying_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = LocalBackend(tmp_path / "workspace")
    backend.create_compute_cluster("one", max_concurrent_runs=1)
    project = tmp_path / "project"
    write_script(project, "wait.py", "import time\ntime.sleep(1)\n")
    write_script(project, "hi.py", "print('hi')\n")
    first = backend.submit(JobSpec(entry_script="wait.py", compute="one", snapshot_root=project))
    script = tmp_path / "submit_and_leave.py"
    script.write_text(SUBMIT_AND_LEAVE, encoding="utf-8")
    monkeypatch.delenv("MY_API_TOKEN", raising=False)  # only the submitter below holds it
    submitted = subprocess.run(
        [sys.executable, str(script), str(backend.root), str(project)],
        env={**os.environ, "MY_API_TOKEN": JOB_TOKEN, "PYTHONPATH": str(PACKAGE_PARENT)},
        capture_output=True, timeout=60, check=True,
    )  # fmt: skip
    queued = backend.get_run_ref(submitted.stdout.decode().strip())

    assert backend.wait(first, timeout=30).succeeded
    state = backend.wait(queued, timeout=30)

    assert state.status.value == "Failed" and state.failure_kind is FailureKind.USER_ERROR
    assert "MY_API_TOKEN" in state.error and "submit the job again" in state.error
    assert JOB_TOKEN not in state.error


def test_a_supervisor_builds_an_identity_datastore_from_the_secrets_it_was_handed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AZURE_TENANT_ID", "00000000-0000-0000-0000-000000000001")
    monkeypatch.setenv("AZURE_CLIENT_ID", "00000000-0000-0000-0000-000000000002")
    monkeypatch.setenv("AZURE_CLIENT_SECRET", "client-secret-value")
    root = tmp_path / "workspace"
    root.mkdir()
    (root / "datastores.toml").write_text(
        '[datastores.lake]\naccount_url = "https://acct.blob.core.windows.net"\n'
        'container = "lake"\nuse_azure_identity = true\n'
    )
    backend = LocalBackend(root)

    handed = backend._launch_secrets()  # what a supervisor gets on its stdin
    assert sorted(handed) == ["AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET", "AZURE_TENANT_ID"]
    for name in handed:
        monkeypatch.delenv(name)  # a supervisor's own environment has none of them
    store = LocalWorkspaceConfig.load(root, environ=handed).datastore("lake")

    assert repr(store._auth) == "TokenAuth(ClientSecretCredential)"  # type: ignore[attr-defined]
