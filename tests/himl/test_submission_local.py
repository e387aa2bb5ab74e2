"""`--himl-local`: a hi-ml script submits itself to the local backend, as with `--azureml`.

Each test runs a tiny script as a real process, as a user starts it, and the job as the
local backend runs it (a supervised subprocess).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from himl_tasks import LocalBackend
from himl_tasks.himl import LOCAL_FLAG
from himl_tasks.runs import RunStatus, read_most_recent_run

SCRIPT = """
import sys
from pathlib import Path

from himl_tasks import submit_to_azure_if_needed

run_info = submit_to_azure_if_needed(
    wait_for_completion=True, wait_for_completion_show_output=True, experiment_name="door"
)
# Only the job gets here: the submitting process exits inside the call.
print(f"after the call: arguments {sys.argv[1:]}, run {run_info.run is not None}")
(run_info.output_folder / "seen.txt").write_text(" ".join(sys.argv[1:]))
run_info.run.log("answer", 42)  # hi-ml's example 8 logs to run_info.run
Path("ran_here.txt").write_text("the code after the call ran in this folder")
if "--fail" in sys.argv:
    raise ZeroDivisionError("the job's own error")
"""


def _run(project: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "sample.py", *arguments],
        cwd=project,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def sample(himl_project: Path) -> Path:
    (himl_project / "sample.py").write_text(textwrap.dedent(SCRIPT), encoding="utf-8")
    return himl_project


def test_the_local_flag_submits_waits_streams_and_exits(sample: Path) -> None:
    finished = _run(sample, "--epochs", LOCAL_FLAG, "3")

    assert finished.returncode == 0, finished.stderr
    recovery_id = (sample / "most_recent_run.txt").read_text(encoding="utf-8").strip()
    experiment, run_id = recovery_id.split(":")
    assert experiment == "door"
    out = finished.stdout
    assert f"Successfully queued run {run_id} in experiment door" in out
    assert "most_recent_run.txt" in out and "Run URL: " in out
    # The job's log, streamed while waiting: the script's arguments, without the flag.
    assert "after the call: arguments ['--epochs', '3'], run True" in out
    assert out.index("Successfully queued") < out.index("after the call") < out.index("completed")
    # The code after the call ran only in the job, never in the submitting process.
    assert out.count("after the call") == 1
    assert not (sample / "ran_here.txt").exists() and not (sample / "outputs").exists()
    # The run's outputs/ are in the local workspace.
    backend = LocalBackend(os.environ["HIML_HOME"])
    ref = backend.get_run_ref(recovery_id)
    assert backend.get_state(ref).status is RunStatus.COMPLETED
    backend.download_files(ref, "outputs/seen.txt", sample / "fetched")
    assert (sample / "fetched" / "outputs" / "seen.txt").read_text() == "--epochs 3"
    assert [(m.name, m.value) for m in backend.get_metrics(ref)] == [("answer", 42)]
    # The same recovery id as the backend's own file beside the script.
    assert read_most_recent_run(sample / "most_recent_run.txt") == recovery_id


def test_a_failing_job_fails_the_submitting_process(sample: Path) -> None:
    finished = _run(sample, LOCAL_FLAG, "--fail")

    assert finished.returncode == 1
    assert "JobFailedError" in finished.stderr and "Failed" in finished.stderr
    assert "ZeroDivisionError: the job's own error" in finished.stdout  # the streamed log
    assert (sample / "most_recent_run.txt").exists()


WAITING_SCRIPT = """
import sys
import time
from pathlib import Path

from himl_tasks import submit_to_azure_if_needed

submit_to_azure_if_needed(
    wait_for_completion=True, wait_for_completion_show_output=True, experiment_name="door"
)
print("the job started", flush=True)
go = Path(sys.argv[1])
deadline = time.monotonic() + 60
while not go.exists() and time.monotonic() < deadline:
    time.sleep(0.05)
print("the job went on after the interrupt", flush=True)
"""


def test_ctrl_c_while_waiting_stops_the_wait_not_the_run(himl_project: Path) -> None:
    # Ctrl-C is SIGINT to the submitting process: its wait stops, with a word that the run
    # goes on and how to find it, no traceback, and the shell's exit code for an interrupt.
    (himl_project / "sample.py").write_text(textwrap.dedent(WAITING_SCRIPT), encoding="utf-8")
    go = himl_project / "go"
    submitting = subprocess.Popen(
        [sys.executable, "sample.py", str(go), LOCAL_FLAG],
        cwd=himl_project,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert submitting.stdout is not None
        for line in submitting.stdout:  # the streamed log: the job is running
            if "the job started" in line:
                break
        submitting.send_signal(signal.SIGINT)
        _, err = submitting.communicate(timeout=60)
    finally:
        submitting.kill()

    assert submitting.returncode == 130, err
    assert "Traceback" not in err
    recovery_id = read_most_recent_run(himl_project / "most_recent_run.txt")
    assert f"Stopped waiting for run {recovery_id.split(':')[1]}: the run itself goes on" in err
    assert f"fetch_run(workspace, '{recovery_id}')" in err
    # The run went on, and completes once its job is let go.
    go.touch()
    backend = LocalBackend(os.environ["HIML_HOME"])
    ref = backend.get_run_ref(recovery_id)
    assert backend.watch(ref, timeout_seconds=60).status is RunStatus.COMPLETED


def test_a_module_started_with_python_m_runs_as_that_module_in_the_job(
    himl_project: Path,
) -> None:
    # `python -m pkg.train --himl-local`: the job runs `python -m pkg.train`, so the module's
    # relative imports work there as here (its file run as a script had no package).
    package = himl_project / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "helper.py").write_text("ANSWER = 42\n")
    (package / "train.py").write_text(
        textwrap.dedent("""
            import sys
            from himl_tasks import submit_to_azure_if_needed

            submit_to_azure_if_needed(wait_for_completion=True)
            from .helper import ANSWER

            print(f"the answer is {ANSWER}, arguments {sys.argv[1:]}")
        """),
        encoding="utf-8",
    )
    finished = subprocess.run(
        [sys.executable, "-m", "pkg.train", "--epochs", "3", LOCAL_FLAG],
        cwd=himl_project,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert finished.returncode == 0, finished.stdout + finished.stderr
    recovery_id = read_most_recent_run(himl_project / "most_recent_run.txt")
    assert recovery_id.startswith("train:")  # the module's name, as the script's would be
    backend = LocalBackend(os.environ["HIML_HOME"])
    log = "".join(backend.iter_logs(backend.get_run_ref(recovery_id)))
    assert "the answer is 42, arguments ['--epochs', '3']" in log
