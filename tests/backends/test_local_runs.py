"""Real subprocess runs on the local backend: every status path, logs, files, limits."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from himl_tasks.backends.local.backend import LocalBackend
from himl_tasks.backends.watching import MIN_PAUSE_SECONDS
from himl_tasks.errors import (
    ComputeNotFoundError,
    InvalidInputError,
    JobTimeoutError,
    RunNotFoundError,
)
from himl_tasks.job_spec import JobSpec
from himl_tasks.runs import FailureKind, RunStatus
from himl_tasks.testing.azurite import connection_string, random_account_key
from tests.backends.conftest import write_script


def wait_for(predicate: object, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


def test_a_run_records_every_status_in_order_and_its_exit_code(
    backend: LocalBackend, project: Path
) -> None:
    # Completing, logs, recovery ids and run files: the Backend contract (test_backend_contract).
    write_script(project, "hi.py", 'print("hi")\n')

    ref = backend.submit(JobSpec(entry_script="hi.py", snapshot_root=project))
    state = backend.wait(ref, timeout=30)

    assert state.succeeded and state.exit_code == 0
    history = backend.status_history(ref)
    assert [status.value for _, status, _ in history] == [
        "NotStarted", "Queued", "Preparing", "Running", "Finalizing", "Completed",
    ]  # fmt: skip
    assert [when for _, _, when in history] == sorted(when for _, _, when in history)
    assert backend.list_files(ref) == ["azureml-logs/70_driver_log.txt"]
    assert ref.experiment == "hi" and ref.run_id.startswith("hi_")
    found = backend.get_run_ref(ref.run_id)
    assert found.portal_url == ref.portal_url and found.portal_url.startswith("file://")


def test_a_failing_script_is_failed_with_its_exit_code_and_log_tail(
    backend: LocalBackend, project: Path
) -> None:
    write_script(
        project,
        "boom.py",
        """
        import sys
        print("loading data")
        print("something is wrong with the labels", file=sys.stderr)
        sys.exit(3)
        """,
    )
    state = backend.wait(backend.submit(JobSpec(entry_script="boom.py", snapshot_root=project)))

    assert state.status is RunStatus.FAILED
    assert state.failure_kind is FailureKind.USER_ERROR
    assert state.exit_code == 3
    assert "exit code 3" in state.error
    assert "something is wrong with the labels" in state.error


def test_arguments_pass_through_without_the_azureml_flag_and_modules_run(
    backend: LocalBackend, project: Path
) -> None:
    write_script(project, "pkg/__init__.py", "")
    write_script(
        project,
        "pkg/main.py",
        """
        import sys
        print(sys.argv[1:])
        """,
    )
    spec = JobSpec(
        module="pkg.main", args=["--lr", "0.1", "--azureml", "x y"], snapshot_root=project
    )
    ref = backend.submit(spec)

    assert backend.wait(ref).succeeded
    assert list(backend.iter_logs(ref)) == ["['--lr', '0.1', 'x y']"]
    assert ref.experiment == "main"


def test_secrets_in_the_submitters_environment_do_not_reach_the_job(
    backend: LocalBackend, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    leaked = connection_string({"AccountName": "acct", "AccountKey": random_account_key()})
    monkeypatch.setenv("STORAGE_CONNECTION_STRING", leaked)
    write_script(
        project,
        "env.py",
        """
        import os
        print(os.environ.get("STORAGE_CONNECTION_STRING"), os.environ.get("GIVEN"))
        """,
    )
    spec = JobSpec(
        entry_script="env.py", snapshot_root=project, environment_variables={"GIVEN": "yes"}
    )
    ref = backend.submit(spec)

    assert backend.wait(ref).succeeded
    assert list(backend.iter_logs(ref)) == ["None yes"]


def test_iter_logs_follows_a_running_job_line_by_line(backend: LocalBackend, project: Path) -> None:
    write_script(
        project,
        "slow.py",
        """
        import time
        for i in range(3):
            print(f"epoch {i}")
            time.sleep(0.2)
        """,
    )
    ref = backend.submit(JobSpec(entry_script="slow.py", snapshot_root=project))

    lines = list(backend.iter_logs(ref, follow=True))

    assert lines == ["epoch 0", "epoch 1", "epoch 2"]
    assert backend.get_state(ref).status is RunStatus.COMPLETED


def test_cancel_ends_the_whole_process_group(
    backend: LocalBackend, project: Path, tmp_path: Path
) -> None:
    pid_file = tmp_path / "child.pid"
    write_script(
        project,
        "spawner.py",
        f"""
        import os, subprocess, sys, time
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        open({str(pid_file)!r} + ".tmp", "w").write(str(child.pid))
        os.replace({str(pid_file)!r} + ".tmp", {str(pid_file)!r})
        print("started", flush=True)
        time.sleep(60)
        """,
    )
    ref = backend.submit(JobSpec(entry_script="spawner.py", snapshot_root=project))
    wait_for(pid_file.exists)
    child = int(pid_file.read_text())

    backend.cancel(ref)
    state = backend.wait(ref, timeout=30)

    assert state.status is RunStatus.CANCELED
    assert state.failure_kind is FailureKind.CANCELED
    wait_for(lambda: not _alive(child), timeout=10)


def test_max_run_duration_fails_the_run_with_failure_kind_timeout(
    backend: LocalBackend, project: Path
) -> None:
    write_script(project, "forever.py", "import time\ntime.sleep(60)\n")
    spec = JobSpec(entry_script="forever.py", snapshot_root=project, max_run_duration="0.5s")

    started = time.monotonic()
    state = backend.wait(backend.submit(spec), timeout=30)

    assert state.status is RunStatus.FAILED
    assert state.failure_kind is FailureKind.TIMEOUT
    assert "max_run_duration" in state.error
    assert time.monotonic() - started < 10


def test_runs_beyond_the_cluster_limit_stay_queued_until_a_slot_frees(
    backend: LocalBackend, project: Path, tmp_path: Path
) -> None:
    backend.create_compute_cluster("gpu", max_concurrent_runs=1)
    release = tmp_path / "release"
    write_script(
        project,
        "hold.py",
        f"""
        import os, time
        while not os.path.exists({str(release)!r}):
            time.sleep(0.02)
        """,
    )
    spec = JobSpec(entry_script="hold.py", snapshot_root=project, compute="gpu")
    first = backend.submit(spec)
    second = backend.submit(spec)
    wait_for(lambda: backend.get_state(first).status is RunStatus.RUNNING)
    time.sleep(0.3)  # a supervisor polls for slots every 50 ms: it had several chances

    assert backend.get_state(second).status is RunStatus.QUEUED
    release.write_text("go")
    first_state, second_state = backend.wait(first), backend.wait(second)

    assert first_state.succeeded and second_state.succeeded
    assert second_state.started_at >= first_state.ended_at  # type: ignore[operator]


def test_a_run_whose_supervisor_dies_is_failed_as_infrastructure(
    backend: LocalBackend, project: Path
) -> None:
    write_script(project, "forever.py", "import time\ntime.sleep(60)\n")
    ref = backend.submit(JobSpec(entry_script="forever.py", snapshot_root=project))
    wait_for(lambda: backend.get_state(ref).status is RunStatus.RUNNING)
    row = backend.registry.get_run(ref.run_id)
    assert row is not None and row.supervisor_pid and row.job_group

    os.killpg(row.supervisor_pid, 9)  # it leads its own session; the job has its own group
    state = backend.wait(ref, timeout=10)

    assert state.status is RunStatus.FAILED
    assert state.failure_kind is FailureKind.INFRASTRUCTURE
    assert "supervisor" in state.error
    wait_for(lambda: not _alive(row.job_group), timeout=10)  # the orphaned job was ended
    backend.cancel(ref)  # already terminal: nothing happens


def test_bad_submissions_get_one_clear_error_each(
    backend: LocalBackend, project: Path, tmp_path: Path
) -> None:
    outside = write_script(tmp_path, "elsewhere.py", "print(1)\n")
    write_script(project, "ok.py", "print(1)\n")

    with pytest.raises(InvalidInputError, match="outside the snapshot root"):
        backend.submit(JobSpec(entry_script=outside, snapshot_root=project))
    with pytest.raises(InvalidInputError, match="does not exist"):
        backend.submit(JobSpec(entry_script="missing.py", snapshot_root=project))
    with pytest.raises(InvalidInputError, match="module 'no_such_mod'"):
        backend.submit(JobSpec(module="no_such_mod", snapshot_root=project))
    with pytest.raises(ComputeNotFoundError, match="'gpu-cluster'.*known clusters: local"):
        backend.submit(JobSpec(entry_script="ok.py", snapshot_root=project, compute="gpu-cluster"))
    with pytest.raises(InvalidInputError, match="exactly one of entry_script and module"):
        JobSpec()
    with pytest.raises(InvalidInputError, match="not a duration"):
        JobSpec(entry_script="ok.py", max_run_duration="soon")
    with pytest.raises(RunNotFoundError):
        backend.get_run_ref("exp:no_such_run")
    assert backend.registry.runs() == []


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_a_supervisor_that_cannot_start_leaves_the_run_failed_not_pending(
    backend: LocalBackend, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_script(project, "hi.py", 'print("hi")\n')

    def no_processes(*args: object, **kwargs: object) -> int:
        raise OSError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(os, "posix_spawn", no_processes)
    ref = backend.submit(JobSpec(entry_script="hi.py", snapshot_root=project))

    [run] = backend.registry.runs()
    assert run.status is RunStatus.FAILED and "could not be started" in run.error
    assert "Resource temporarily unavailable" in run.error
    assert backend.get_state(ref).failure_kind is FailureKind.INFRASTRUCTURE


def test_a_wait_with_no_pause_still_pauses_between_looks_and_keeps_its_deadline(
    backend: LocalBackend, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_script(project, "forever.py", "import time\ntime.sleep(60)\n")
    ref = backend.submit(JobSpec(entry_script="forever.py", snapshot_root=project))
    wait_for(lambda: backend.get_state(ref).status is RunStatus.RUNNING)
    looks = []
    get_state = backend.get_state
    monkeypatch.setattr(backend, "get_state", lambda r: looks.append(1) or get_state(r))

    started = time.monotonic()
    with pytest.raises(JobTimeoutError):
        backend.wait(ref, timeout=0.5, poll=0)
    with pytest.raises(JobTimeoutError):
        list(backend.iter_logs(ref, follow=True, timeout=0.5, poll=0))

    assert time.monotonic() - started < 2.0
    assert len(looks) <= 2 * (0.5 / MIN_PAUSE_SECONDS + 2)  # not thousands of looks a second
    backend.cancel(ref)
    assert backend.wait(ref, timeout=30).status is RunStatus.CANCELED


def test_a_relative_interpreter_is_taken_from_the_folder_the_spec_was_made_in(
    backend: LocalBackend, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_script(project, "train.py", "print('ran')\n")
    (project / "env" / "bin").mkdir(parents=True)
    (project / "env" / "bin" / "python").symlink_to(sys.executable)
    monkeypatch.chdir(project)
    spec = JobSpec(entry_script="train.py", python_executable="env/bin/python")
    assert spec.python_executable == str(project / "env" / "bin" / "python")

    monkeypatch.chdir("/")
    state = backend.wait(backend.submit(spec), timeout=60)

    # It used to pass the check at submission, then fail the run as `infrastructure` (which
    # run_job resubmits) when the supervisor, in the run's folder, could not find it.
    assert state.succeeded, state.error
    assert list(backend.iter_logs(state.ref)) == ["ran"]
