"""himl-tb started as a user starts it, against real local runs writing TensorBoard event files:
its page and runs over HTTP, the logs kept in sync while the run goes on, cleanup on Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from himl_tasks.backends.azureml_v1 import AzureMLV1Backend
from himl_tasks.backends.local.backend import LocalBackend
from himl_tasks.cli.tensorboard_logs import TensorBoardLogs
from himl_tasks.job_spec import JobSpec
from himl_tasks.runs import RunRef
from tests.backends.azureml_service import FakeAzureMLService, Outcome
from tests.backends.conftest import azureml_job, write_script

DEADLINE = 90.0

# Three steps, then (once the test makes the file its argument names) three more: the run is
# still going while himl-tb serves its first steps.
TRAIN = """
import sys
import time
from pathlib import Path
from torch.utils.tensorboard import SummaryWriter
writer = SummaryWriter("outputs/tb")
for step in range(3):
    writer.add_scalar("loss", 1.0 / (step + 1), step)
writer.flush()
print("first steps written", flush=True)
deadline = time.monotonic() + 120
while not Path(sys.argv[1]).exists() and time.monotonic() < deadline:
    time.sleep(0.1)
for step in range(3, 6):
    writer.add_scalar("loss", 1.0 / (step + 1), step)
writer.close()
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for(what: str, predicate: object, timeout: float = DEADLINE) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"{what}: not within {timeout:g} s"
        time.sleep(0.2)


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as answer:
        return bytes(answer.read())


def start_run(project: Path, workspace: Path) -> tuple[LocalBackend, RunRef]:
    backend = LocalBackend(workspace)
    write_script(project, "train.py", TRAIN)
    spec = JobSpec(entry_script="train.py", snapshot_root=project, args=(str(project / "go"),))
    ref = backend.submit(spec)
    wait_for(
        "the first steps",
        lambda: any("first steps" in line for line in backend.iter_logs(ref)),
    )
    return backend, ref


@pytest.fixture
def temp_folder(tmp_path: Path) -> Path:
    """Where himl-tb makes its temporary folder (TMPDIR), to see it made and removed."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    return folder


@pytest.fixture
def himl_tb(cwd_project: Path, temp_folder: Path) -> Iterator[list[subprocess.Popen[str]]]:
    """Started himl-tb processes, each stopped at the end of the test if still running."""
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait(10)


def start_himl_tb(
    started: list[subprocess.Popen[str]], cwd: Path, temp: Path, *args: str
) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "himl_tasks.cli.tensorboard_command", *args],
        cwd=cwd,
        env={**os.environ, "TMPDIR": str(temp)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    started.append(process)
    return process


def read_until(process: subprocess.Popen[str], marker: str) -> list[str]:
    """Lines of its stdout up to the one with `marker` (a deadline through the test timeout)."""
    assert process.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line.rstrip("\n"))
        if marker in line:
            return lines
    stderr = process.stderr.read() if process.stderr and process.poll() is not None else ""
    raise AssertionError(f"no '{marker}' in {lines}; stderr: {stderr}")


def ours(temp: Path) -> list[Path]:
    """himl-tb's temporary folders there (TensorBoard keeps its .tensorboard-info beside)."""
    return [p for p in temp.iterdir() if p.name.startswith("himl-tb-")]


def loss_steps(port: int, run: str) -> list[int]:
    url = f"http://127.0.0.1:{port}/data/plugin/scalars/scalars?run={run}&tag=loss"
    try:
        return [int(point[1]) for point in json.loads(get(url))]
    except OSError:  # no such run (HTTP 400) yet
        return []


def test_himl_tb_serves_the_runs_logs_keeps_them_in_sync_and_cleans_up_on_ctrl_c(
    cwd_project: Path,
    workspace: Path,
    temp_folder: Path,
    himl_tb: list[subprocess.Popen[str]],
) -> None:
    _, ref = start_run(cwd_project, workspace)
    port = free_port()

    process = start_himl_tb(himl_tb, cwd_project, temp_folder, "--port", str(port))
    lines = read_until(process, "TensorBoard: ")

    assert lines[-1] == f"TensorBoard: http://127.0.0.1:{port}/  (Ctrl-C to stop)"
    assert f"  {ref} -> {ref.run_id}/" in lines
    (root,) = ours(temp_folder)
    assert lines[0] == f"1 event file(s) of 1 run(s) in {root / 'logs'}"
    assert b"<!doctype html>" in get(f"http://127.0.0.1:{port}/")
    tb_run = f"{ref.run_id}/outputs/tb"
    wait_for("the run in TensorBoard", lambda: tb_run in json.loads(get(
        f"http://127.0.0.1:{port}/data/runs")))  # fmt: skip
    wait_for("the first steps", lambda: loss_steps(port, tb_run) == [0, 1, 2])

    (cwd_project / "go").touch()  # the run writes three more steps and ends
    wait_for("the later steps", lambda: loss_steps(port, tb_run) == [0, 1, 2, 3, 4, 5])

    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert out.strip().splitlines()[-1] == f"stopped; removed {root}"
    assert ours(temp_folder) == []
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0  # TensorBoard is gone


def test_a_port_in_use_is_one_line_before_anything_is_downloaded(
    cwd_project: Path,
    workspace: Path,
    temp_folder: Path,
    himl_tb: list[subprocess.Popen[str]],
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        process = start_himl_tb(
            himl_tb, cwd_project, temp_folder, "--port", str(port), "--run_ids", "x_1"
        )
        _, err = process.communicate(timeout=60)

    assert process.returncode == 2  # bad usage, as himl's (himl_tasks.cli.exit_codes)
    assert err == (
        f"himl-tb: error: port {port} on 127.0.0.1 is in use (another TensorBoard?): give "
        "another with --port\n"
    )
    assert ours(temp_folder) == []


def test_a_folder_without_most_recent_run_txt_is_one_line(
    cwd_project: Path,
    workspace: Path,
    temp_folder: Path,
    himl_tb: list[subprocess.Popen[str]],
) -> None:
    process = start_himl_tb(
        himl_tb, cwd_project, temp_folder, "--port", str(free_port()), "--latest_run_file", "."
    )
    _, err = process.communicate(timeout=60)

    assert process.returncode == 2
    assert err == (
        "himl-tb: error: folder . has no most_recent_run.txt: no run was submitted from it; "
        "give the file itself, or a folder a job was submitted from\n"
    )
    assert ours(temp_folder) == []


def test_event_files_of_an_azureml_run_come_from_its_artifact_store(
    cwd_project: Path,
    aml: AzureMLV1Backend,
    aml_service: FakeAzureMLService,
    tmp_path: Path,
) -> None:
    events = b"\x18\x00\x00\x00not a real event file, bytes are bytes"
    aml_service.next_outcome = Outcome(
        files={"outputs/tb/events.out.tfevents.1.host": events, "outputs/model.pt": b"w"}
    )
    ref = aml.submit(azureml_job(cwd_project, "print('hi')\n", "train.py"))
    assert aml.wait(ref, timeout=30).succeeded
    logs = TensorBoardLogs(aml, [ref], "outputs", tmp_path / "tb", tmp_path / "incoming")

    assert logs.sync() == 1
    assert logs.all_finished and logs.sync() == 0
    assert (
        tmp_path / "tb" / ref.run_id / "outputs/tb/events.out.tfevents.1.host"
    ).read_bytes() == (events)
    assert not (tmp_path / "tb" / ref.run_id / "outputs/model.pt").exists()  # event files only


def test_a_port_taken_between_the_check_and_tensorboard_s_start_is_an_error(
    tmp_path: Path,
) -> None:
    # Another program takes the port after check_port_free: himl-tb took that program's answer
    # for TensorBoard's, printed its URL and served nothing of the runs.
    import threading

    from himl_tasks.cli.tensorboard_command import start_tensorboard
    from himl_tasks.errors import ConfigurationError

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ConfigurationError, match=f"could not bind to port {port}"):
            start_tensorboard(tmp_path, port, threading.Event())


def test_a_stop_asked_during_a_sync_pass_ends_it_between_files(tmp_path: Path) -> None:
    # Ctrl-C/SIGTERM during the first sync (or the background thread's pass) waited for the
    # whole pass (up to its 60 s deadline), then started TensorBoard anyway; the thread, still
    # fetching after stop()'s 30 s, could write into the temporary folder after it was removed.
    backend = LocalBackend(tmp_path / "workspace")
    script = """\
        from pathlib import Path
        for index in range(3):
            Path(f"outputs/tb/events.out.tfevents.{index}.host").parent.mkdir(
                parents=True, exist_ok=True)
            Path(f"outputs/tb/events.out.tfevents.{index}.host").write_bytes(b"event")
    """
    write_script(tmp_path / "project", "train.py", script)
    ref = backend.submit(JobSpec(entry_script="train.py", snapshot_root=tmp_path / "project"))
    assert backend.wait(ref, timeout=60).succeeded
    logs = TensorBoardLogs(backend, [ref], "outputs", tmp_path / "tb", tmp_path / "incoming")

    logs.stop.set()
    assert logs.sync() == 0 and not logs.all_finished
    assert not (tmp_path / "tb").exists() and not (tmp_path / "incoming").exists()
    logs.stop.clear()
    assert logs.sync() == 3 and logs.all_finished
