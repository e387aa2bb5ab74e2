"""Attacks on local runs by a hostile tester: real processes SIGKILLed, cancels, secrets hunted.

Every process here is real: supervisors and jobs are found in /proc and killed with SIGKILL.
A supervisor is attacked from inside with a `sitecustomize` module on its PYTHONPATH (which a
supervisor keeps), wrapping one registry step to kill its own process there.
"""

from __future__ import annotations

import os
import signal
import textwrap
from pathlib import Path

import pytest

from himl_tasks.backends.local.backend import LocalBackend
from himl_tasks.job_spec import JobSpec
from himl_tasks.runs import FailureKind, RunStatus
from tests.backends.conftest import write_script
from tests.reliability.test_run_lifecycle import supervisors_of, wait_for

# Writes its pid, then sleeps until killed.
SLEEPER = """\
import os, sys, time
from pathlib import Path
Path(sys.argv[1]).write_text(str(os.getpid()))
time.sleep(120)
"""
QUICK = "print('done')\n"


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def processes_naming(text: str) -> list[int]:
    """The live processes whose command line holds `text`."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and text.encode() in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return [pid for pid in found if alive(pid)]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    folder = tmp_path / "project"
    write_script(folder, "sleeper.py", SLEEPER)
    write_script(folder, "quick.py", QUICK)
    return folder


@pytest.fixture
def backend(tmp_path: Path) -> LocalBackend:
    return LocalBackend(tmp_path / "workspace")


def test_a_queued_run_starts_when_the_runs_holding_every_slot_lost_their_supervisors(
    backend: LocalBackend, project: Path, tmp_path: Path
) -> None:
    backend.create_compute_cluster("pair", max_concurrent_runs=2)
    holders = []
    for index in range(2):
        pid_file = tmp_path / f"job{index}.pid"
        spec = JobSpec(
            entry_script="sleeper.py", args=[str(pid_file)], compute="pair", snapshot_root=project
        )
        holders.append((backend.submit(spec), pid_file))
    for _, pid_file in holders:
        wait_for(pid_file.exists)
    for pid in supervisors_of(backend.root):
        os.kill(pid, signal.SIGKILL)  # nobody is told, nobody looks at these runs again

    queued = backend.submit(JobSpec(entry_script="quick.py", compute="pair", snapshot_root=project))
    state = backend.wait(queued, timeout=20, poll=0.1)

    assert state.succeeded, state.error
    for ref, pid_file in holders:
        held = backend.registry.get_run(ref.run_id)
        assert held is not None and held.status is RunStatus.FAILED
        assert held.failure_kind == FailureKind.INFRASTRUCTURE.value
        wait_for(lambda p=int(pid_file.read_text()): not alive(p))  # type: ignore[misc]
    wait_for(lambda: not supervisors_of(backend.root))


# A supervisor's sitecustomize (its environment is allow-listed, so the attack is read from a
# file beside it): SIGKILLs the supervisor at one registry step, "<Registry method>:<value of
# its second argument, or *>", once (the file "attacked" beside it marks it done).
SUPERVISOR_HOOK = """\
import os, signal
from pathlib import Path
from himl_tasks.backends.local import registry as registry_module

here = Path(__file__).parent
method, wanted = (here / "attack.txt").read_text().split(":")
once = here / "attacked"
original = getattr(registry_module.Registry, method)

def dying(self, *args, **kwargs):
    chosen = wanted == "*" or (len(args) > 1 and str(args[1]) == wanted)
    if chosen and not once.exists():
        once.write_text("killed")
        os.kill(os.getpid(), signal.SIGKILL)
    return original(self, *args, **kwargs)

setattr(registry_module.Registry, method, dying)
"""


@pytest.fixture
def attack_supervisors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """Returns a function arming the supervisors started from now on to die at one step."""
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(SUPERVISOR_HOOK)

    def arm(step: str) -> Path:
        (hooks / "attack.txt").write_text(step)
        path = os.pathsep.join(p for p in (str(hooks), os.environ.get("PYTHONPATH", "")) if p)
        monkeypatch.setenv("PYTHONPATH", path)
        return hooks / "attacked"

    return arm


def test_a_supervisor_killed_before_it_recorded_its_job_leaves_no_job_running(
    backend: LocalBackend, project: Path, tmp_path: Path, attack_supervisors
) -> None:
    attacked = attack_supervisors("set_job_group:*")  # the job started, its group not recorded
    pid_file = tmp_path / "job.pid"

    spec = JobSpec(entry_script="sleeper.py", args=[str(pid_file)], snapshot_root=project)

    ref = backend.submit(spec)
    wait_for(attacked.exists)
    state = backend.wait(ref, timeout=20, poll=0.1)

    assert state.failure_kind is FailureKind.INFRASTRUCTURE, state
    wait_for(lambda: not processes_naming(str(pid_file)), timeout=5)
    assert not supervisors_of(backend.root)
