# ruff: noqa: F811 (the fixtures of tests/backends are imported, and named as arguments)
"""A run's life on the local backend when processes die: submitted once, started, never orphaned.

Each crash is a real SIGKILL of a real submitting process at a named step (a small script that
wraps one registry step to kill its own process there), followed by a re-run. Supervisors are
real processes too, found in /proc.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from himl_tasks.backends.azureml_common.tags import SUBMISSION_TAG
from himl_tasks.backends.azureml_v1 import AzureMLV1Backend
from himl_tasks.backends.azureml_v1.backend import run_id_for
from himl_tasks.backends.local.backend import LocalBackend
from himl_tasks.backends.local.clusters import Preemption
from himl_tasks.job_spec import JobSpec, Priority
from himl_tasks.jobs.submit_once import submit_once
from himl_tasks.runs import FailureKind, RunStatus
from tests.backends.azureml_service import FakeAzureMLService
from tests.backends.conftest import (  # noqa: F401 (fixtures)
    aml,
    aml_service,
    backend,
    project,
    write_script,
)

PACKAGE_PARENT = Path(__file__).resolve().parents[2]
SUPERVISOR_MODULE = "himl_tasks.backends.local.supervisor"

# Runs the submission given on its command line, SIGKILLing its own process at one step:
# "<Registry method>:before" or ":after" (the step of the submission that was reached).
SUBMIT_AND_DIE = """\
import os, signal, sys
from himl_tasks.backends.local import registry as registry_module
from himl_tasks.backends.local.backend import LocalBackend
from himl_tasks.job_spec import JobSpec

root, project, executions, point, submission_id = sys.argv[1:6]
method, when = point.split(":")
original = getattr(registry_module.Registry, method)

def dying(self, *args, **kwargs):
    if when == "before":
        os.kill(os.getpid(), signal.SIGKILL)
    result = original(self, *args, **kwargs)
    os.kill(os.getpid(), signal.SIGKILL)
    return result

setattr(registry_module.Registry, method, dying)
spec = JobSpec(entry_script="count.py", args=[executions], snapshot_root=project)
extra = {"submission_id": submission_id} if submission_id else {}
LocalBackend(root).submit(spec, **extra)
raise SystemExit("the submission was not killed")
"""

# A flow that runs the counting job with `run_job`, its process SIGKILLed as soon as the backend
# has made the run: before Prefect (or anything else in the flow) hears of it.
FLOW_THAT_DIES = """\
import os, signal, sys
from prefect import flow
from himl_tasks.backends.local.backend import LocalBackend
from himl_tasks.job_spec import JobSpec
from himl_tasks.prefect import run_job

block, project, executions = sys.argv[1:4]
original = LocalBackend.submit

def dying(self, *args, **kwargs):
    original(self, *args, **kwargs)
    os.kill(os.getpid(), signal.SIGKILL)

LocalBackend.submit = dying

@flow
def count():
    spec = JobSpec(entry_script="count.py", args=[executions], snapshot_root=project)
    return run_job(block, spec, max_retries=0)

count()
"""

COUNT = """\
import sys, time
with open(sys.argv[1], "a") as record:
    record.write("ran\\n")
time.sleep(0.3)
"""

# The steps of a local submission, in order: the snapshot is copied before the first.
CRASH_POINTS = [
    "insert_run:before",  # snapshot copied, nothing recorded
    "insert_run:after",  # run recorded Queued, nobody started it
    "claim_slots:after",  # slot claimed (Preparing), no supervisor started
    "set_supervisor:before",  # supervisor started, its pid never recorded
]


def supervisors_of(root: Path) -> list[int]:
    """The pids of live supervisor processes of a workspace (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if SUPERVISOR_MODULE.encode() in argv and str(root).encode() in argv and state != "Z":
            found.append(int(entry.name))
    return found


def wait_for(predicate: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.05)


def submit_and_die(root: Path, project: Path, executions: Path, point: str, sid: str) -> None:
    script = project.parent / "submit_and_die.py"
    script.write_text(SUBMIT_AND_DIE, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(PACKAGE_PARENT)}
    done = subprocess.run(
        [sys.executable, str(script), str(root), str(project), str(executions), point, sid],
        env=env,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == -signal.SIGKILL, done.stderr.decode()


@pytest.fixture
def counting_project(project: Path) -> Path:
    write_script(project, "count.py", COUNT)
    return project


def count_spec(project: Path, executions: Path, **changes: object) -> JobSpec:
    return JobSpec(
        entry_script="count.py", args=[str(executions)], snapshot_root=project,
        **changes,  # type: ignore[arg-type]
    )  # fmt: skip


@pytest.mark.parametrize("point", CRASH_POINTS)
def test_a_submission_killed_at_any_step_and_run_again_makes_one_run_that_runs_once(
    backend: LocalBackend, counting_project: Path, tmp_path: Path, point: str
) -> None:
    executions = tmp_path / "executions.txt"
    submit_and_die(backend.root, counting_project, executions, point, "job-1")

    ref = backend.submit(count_spec(counting_project, executions), submission_id="job-1")
    state = backend.wait(ref, timeout=30)

    assert state.succeeded, state.error
    assert [run.run_id for run in backend.registry.runs()] == [ref.run_id]
    assert executions.read_text() == "ran\n"  # the job ran exactly once
    assert backend.submit(count_spec(counting_project, executions), submission_id="job-1") == ref
    wait_for(lambda: not supervisors_of(backend.root))


@pytest.mark.parametrize("point", CRASH_POINTS[1:])
def test_a_run_whose_submitter_died_while_starting_it_is_started_by_whoever_looks(
    backend: LocalBackend, counting_project: Path, tmp_path: Path, point: str
) -> None:
    executions = tmp_path / "executions.txt"
    submit_and_die(backend.root, counting_project, executions, point, "")
    [run] = backend.registry.runs()

    state = backend.wait(backend.get_run_ref(run.run_id), timeout=15)

    assert state.succeeded, state.error
    assert executions.read_text() == "ran\n"
    wait_for(lambda: not supervisors_of(backend.root))


def test_a_flow_killed_after_its_run_was_made_finds_that_run_when_run_again(
    workspace: tuple[str, LocalBackend], counting_project: Path, tmp_path: Path
) -> None:
    from prefect import flow
    from prefect.settings import PREFECT_API_URL

    from himl_tasks.prefect import run_job

    block, backend = workspace
    executions = tmp_path / "executions.txt"
    script = tmp_path / "flow_that_dies.py"
    script.write_text(FLOW_THAT_DIES, encoding="utf-8")
    env = {
        **os.environ,
        "PYTHONPATH": str(PACKAGE_PARENT),
        "PREFECT_API_URL": PREFECT_API_URL.value(),
    }
    died = subprocess.run(
        [sys.executable, str(script), block, str(counting_project), str(executions)],
        env=env, capture_output=True, timeout=120, check=False,
    )  # fmt: skip
    assert died.returncode == -signal.SIGKILL, died.stderr.decode()[-2000:]
    [made] = backend.registry.runs()

    @flow
    def count() -> object:
        return run_job(block, count_spec(counting_project, executions), max_retries=0)

    result = count()

    assert result.run.run_id == made.run_id and result.reused  # type: ignore[attr-defined]
    assert len(backend.registry.runs()) == 1
    assert executions.read_text() == "ran\n"


def test_submissions_of_one_id_at_the_same_moment_make_one_run(
    backend: LocalBackend, counting_project: Path, tmp_path: Path
) -> None:
    executions = tmp_path / "executions.txt"
    spec = count_spec(counting_project, executions)
    refs = []
    threads = [
        threading.Thread(target=lambda: refs.append(backend.submit(spec, submission_id="same")))
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(set(refs)) == 1 and len(refs) == 4
    assert len(backend.registry.runs()) == 1
    assert backend.wait(refs[0], timeout=30).succeeded
    assert executions.read_text() == "ran\n"
    assert sorted(p.name for p in (backend.root / "runs").iterdir()) == [refs[0].run_id]


def test_a_lost_run_is_resubmitted_once_and_a_live_or_completed_one_never(
    backend: LocalBackend, counting_project: Path, tmp_path: Path
) -> None:
    executions = tmp_path / "executions.txt"
    backend.create_compute_cluster(
        "spot", preemption=Preemption(after_seconds=0.1, max_preemptions=1)
    )
    spec = count_spec(counting_project, executions, compute="spot", priority=Priority.LOW_PRIORITY)

    plan = backend.plan(spec)
    first, found = submit_once(backend, plan, "identity")
    assert not found and backend.wait(first).failure_kind is FailureKind.PREEMPTED
    second, found = submit_once(backend, plan, "identity")  # a lost job may go again
    assert not found and second != first
    assert backend.get_run_ref(second.run_id) == backend.find_submission("identity.2")
    again, found = submit_once(backend, plan, "identity")  # ... but only once
    assert found and again == second
    assert backend.wait(second).succeeded
    assert submit_once(backend, plan, "identity") == (second, True)
    assert len(backend.registry.runs()) == 2
    resumed = backend.registry.get_run(second.run_id)
    assert resumed is not None and resumed.launch_plan.resume_from == first.recovery_id


def test_a_supervisor_whose_workspace_vanished_ends_its_job_and_exits(
    backend: LocalBackend, project: Path, tmp_path: Path
) -> None:
    pid_file = tmp_path / "job.pid"
    write_script(
        project,
        "long.py",
        f"""
        import os, time
        open({str(pid_file)!r} + ".tmp", "w").write(str(os.getpid()))
        os.replace({str(pid_file)!r} + ".tmp", {str(pid_file)!r})
        time.sleep(60)
        """,
    )
    backend.submit(JobSpec(entry_script="long.py", snapshot_root=project))
    wait_for(pid_file.exists)
    assert len(supervisors_of(backend.root)) == 1
    job = int(pid_file.read_text())

    for name in ("registry.sqlite", "registry.sqlite-wal", "registry.sqlite-shm"):
        (backend.root / name).unlink(missing_ok=True)

    wait_for(lambda: not supervisors_of(backend.root) and not _alive(job), timeout=10)
    assert not (backend.root / "registry.sqlite").exists()  # not made again, empty


def test_a_second_supervisor_for_a_run_exits_at_once_and_leaves_it_alone(
    backend: LocalBackend, counting_project: Path, tmp_path: Path
) -> None:
    executions = tmp_path / "executions.txt"
    ref = backend.submit(count_spec(counting_project, executions))
    wait_for(lambda: executions.exists())

    duplicate = subprocess.run(
        [sys.executable, "-m", SUPERVISOR_MODULE, str(backend.root), ref.run_id],
        env={**os.environ, "PYTHONPATH": str(PACKAGE_PARENT)},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=30,
        check=False,
    )

    assert duplicate.returncode == 0
    assert b"has ended or has another supervisor" in duplicate.stderr
    assert backend.wait(ref, timeout=30).succeeded
    assert executions.read_text() == "ran\n"


def test_a_queued_run_canceled_ends_at_once_and_never_starts(
    backend: LocalBackend, counting_project: Path, tmp_path: Path
) -> None:
    backend.create_compute_cluster("one", max_concurrent_runs=1)
    executions = tmp_path / "executions.txt"
    slow = tmp_path / "slow.txt"
    write_script(counting_project, "slow.py", "import time\ntime.sleep(1)\n")
    first = backend.submit(JobSpec(entry_script="slow.py", compute="one",
                                   snapshot_root=counting_project))  # fmt: skip
    queued = backend.submit(count_spec(counting_project, executions, compute="one"))

    assert backend.get_state(queued).status is RunStatus.QUEUED
    backend.cancel(queued)

    assert backend.get_state(queued).status is RunStatus.CANCELED
    assert backend.wait(first, timeout=30).succeeded
    time.sleep(0.3)
    assert not executions.exists() and not slow.exists()
    assert backend.get_state(queued).status is RunStatus.CANCELED


def test_azureml_a_submission_whose_submitter_died_after_the_run_was_made_is_found(
    aml: AzureMLV1Backend, aml_service: FakeAzureMLService, project: Path
) -> None:
    spec = aml_job(project)
    aml_service.crash_after_create = SubmitterDiedError()

    with pytest.raises(SubmitterDiedError):
        aml.submit(spec, submission_id="job-1")
    aml_service.crash_after_create = None
    ref = aml.submit(spec, submission_id="job-1")

    assert aml_service.submit_requests == 1  # the service made one run
    assert list(aml_service.runs) == [ref.run_id] == [run_id_for("job-1")]
    assert aml.find_submission("job-1") == ref
    assert aml.find_submission("job-2") is None
    other = aml.submit(spec, submission_id="job-2")
    assert other != ref and aml_service.runs[other.run_id].tags[SUBMISSION_TAG] == "job-2"


def test_azureml_a_submission_that_lost_the_race_returns_the_winner(
    aml: AzureMLV1Backend, aml_service: FakeAzureMLService, project: Path
) -> None:
    spec = aml_job(project)
    aml_service.another_submitter_first = True  # between our lookup and our submit

    found = aml.submit(spec, submission_id="job-1")

    assert list(aml_service.runs) == [found.run_id] == [run_id_for("job-1")]
    assert aml_service.submit_requests == 1


class SubmitterDiedError(BaseException):
    """The submitting process ends here (as SIGKILL would): nothing after it runs."""


def aml_job(project: Path) -> JobSpec:
    write_script(project, "train.py", "print('training')\n")
    write_script(project, "environment.yml", "name: job\ndependencies:\n  - python=3.11\n")
    return JobSpec(entry_script="train.py", snapshot_root=project, compute="cpu-cluster")


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"
