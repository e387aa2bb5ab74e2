"""`himl`, `himl-download` and `himl-tb` on AzureML SDK v2, against jobs that really run.

The backend is `AzureMLV2Backend` on the executing v2 stand-in
(tests/backends/azureml_v2_execution.py): each job's script runs as a process, its output is
`user_logs/std_log.txt` in the artifact store on Azurite (uploaded as it grows, as is
`logs/`), its metrics go through the in-job half into a real MLflow store, and its files
reach the artifact store when it ends. The console scripts find the workspace from a
`config.json`, through the door's one seam to AzureML (tests/himl/workspace_places.py).
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import textwrap
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from himl_tasks.backends.azureml_v2 import AzureMLV2Backend
from himl_tasks.cli.download_command import main as himl_download
from himl_tasks.cli.tensorboard_command import main as himl_tb
from himl_tasks.job_spec import JobSpec
from himl_tasks.testing.azurite import ACCOUNT_NAME, Azurite
from tests.backends.azureml_v2_execution import ExecutingAzureMLV2Service, executing_v2_service
from tests.cli.conftest import himl, project
from tests.conftest import read_tree
from tests.himl.workspace_places import seam_to, write_config_json

# MLflow 3.17's SQL store (the stand-in's tracking server) uses loader options SQLAlchemy 2.1
# deprecates; the warnings are the library's.
pytestmark = pytest.mark.filterwarnings(
    "ignore:The ``noload`` loader strategy is deprecated:DeprecationWarning"
)
DEADLINE = 120.0


@pytest.fixture
def service(azurite: Azurite) -> Iterator[ExecutingAzureMLV2Service]:
    yield from executing_v2_service(azurite)


@pytest.fixture
def v2(service: ExecutingAzureMLV2Service, azurite: Azurite) -> AzureMLV2Backend:
    backend = AzureMLV2Backend(service=service, account_urls={ACCOUNT_NAME: azurite.account_url})
    backend.max_poll_seconds = 0.5  # type: ignore[misc]  # the stand-in answers at once
    return backend


def job(folder: Path, script: str = "train.py", **fields: object) -> JobSpec:
    (folder / "environment.yml").write_text("name: train\ndependencies:\n  - python=3.11\n")
    return JobSpec(
        entry_script=folder / script,
        snapshot_root=folder,
        compute="cpu-cluster",
        **fields,  # type: ignore[arg-type]
    )


def wait_for(what: str, predicate: Callable[[], bool], timeout: float = DEADLINE) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"{what}: not within {timeout:g} s"
        time.sleep(0.2)


def test_a_real_job_s_log_followed_its_files_checksummed_and_its_mlflow_metrics(
    v2: AzureMLV2Backend, tmp_path: Path
) -> None:
    ref = v2.submit(job(project(tmp_path), args=("--slow", "--lr", "0.5"), display_name="slow"))

    code, out, err = himl(v2, "logs", "slow", "-f", "--timeout", str(DEADLINE))

    assert code == 0, err
    assert [line for line in out.splitlines() if line.startswith("epoch")] == [
        f"epoch {epoch} loss {1.0 / (epoch + 1) + 0.5:.3f}" for epoch in range(5)
    ]
    assert f"run {ref} ended Completed" in err
    code, out, err = himl(v2, "results", ref.run_id, "--dest", str(tmp_path / "got"))
    assert code == 0, err
    assert read_tree(tmp_path / "got") == {"outputs/model.txt": b"weights lr=0.5\n"}
    assert "checksums checked" in out
    code, out, err = himl(v2, "metrics", ref.recovery_id, "--json")
    assert code == 0, err
    assert json.loads(out)[ref.recovery_id]["loss"] == [
        [epoch, pytest.approx(1.0 / (epoch + 1) + 0.5)] for epoch in range(5)
    ]


def test_himl_download_picks_v2_runs_by_ids_recovery_ids_and_experiment_tags(
    v2: AzureMLV2Backend,
    cwd_project: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    folder = project(tmp_path / "code")
    spec = job(folder, experiment="digits")
    refs = {
        lr: v2.submit(dataclasses.replace(spec, args=("--lr", lr), tags={"team": team}))
        for lr, team in (("0.1", "a"), ("0.2", "b"), ("0.3", "a"))
    }
    for ref in refs.values():
        assert v2.wait(ref, timeout=DEADLINE).succeeded
    seam = seam_to(v2, monkeypatch)
    config = ["--config_file", str(write_config_json(tmp_path))]

    def fetched(*args: str) -> dict[str, bytes]:
        out = tmp_path / f"out{len(seam.calls)}"
        assert himl_download([*config, *args, "--output_dir", str(out)]) == 0
        return read_tree(out)

    first, second, third = refs.values()
    assert fetched("--run_ids", first.run_id, "--prefix", "outputs/") == {
        f"{first.run_id}/outputs/model.txt": b"weights lr=0.1\n"
    }
    assert list(fetched("--run_recovery_ids", second.recovery_id, "--prefix", "outputs/")) == [
        f"{second.run_id}/outputs/model.txt"
    ]
    latest_of_a = fetched(
        "--experiment", "digits", "--tags", "team=a", "--num_runs", "5", "--prefix", "outputs/"
    )
    assert sorted(latest_of_a) == sorted(
        f"{ref.run_id}/outputs/model.txt" for ref in (first, third)
    )
    assert list(fetched("--experiment", "digits", "--prefix", "outputs/")) == [
        f"{third.run_id}/outputs/model.txt"
    ]  # the experiment's latest run alone
    assert set(seam.sdks) == {"v2"}


# Three steps into logs/ (which AzureML uploads while the job runs), then, once the file its
# argument names exists, three more: the run is still going while himl-tb serves its first steps.
TENSORBOARD_TRAIN = """
import sys
import time
from pathlib import Path
from torch.utils.tensorboard import SummaryWriter
writer = SummaryWriter("logs/tb")
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


def loss_steps(port: int, run: str) -> list[int]:
    url = f"http://127.0.0.1:{port}/data/plugin/scalars/scalars?run={run}&tag=loss"
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            return [int(point[1]) for point in json.loads(answer.read())]
    except OSError:  # no such run (HTTP 400) yet, or TensorBoard not serving yet
        return []


@pytest.fixture
def signal_handlers() -> Iterator[None]:
    """himl-tb installs its own SIGINT, SIGTERM and SIGHUP handlers: put pytest's back."""
    kept = {signum: signal.getsignal(signum) for signum in (2, 15, 1)}
    yield
    for signum, handler in kept.items():
        signal.signal(signum, handler)


def test_himl_tb_syncs_an_active_v2_run_s_event_files_from_the_artifact_store_and_serves_them(
    v2: AzureMLV2Backend,
    cwd_project: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    signal_handlers: None,
) -> None:
    folder = tmp_path / "code"
    folder.mkdir()
    (folder / "tb_train.py").write_text(textwrap.dedent(TENSORBOARD_TRAIN), encoding="utf-8")
    go = tmp_path / "go"
    ref = v2.submit(job(folder, "tb_train.py", args=(str(go),)))

    def first_steps_logged() -> bool:
        v2.get_state(ref)  # the stand-in's job moves on as its details are read
        return "first steps" in "".join(v2.iter_logs(ref))

    wait_for("the first steps", first_steps_logged)
    seam_to(v2, monkeypatch)
    port = free_port()
    tb_run = f"{ref.run_id}/logs/tb"
    seen: dict[str, object] = {}

    def watch() -> None:
        """What a person at the browser sees; then Ctrl-C, whatever happened."""
        try:
            wait_for(
                "the first steps in TensorBoard", lambda: loss_steps(port, tb_run) == [0, 1, 2]
            )
            seen["running"] = not v2.get_state(ref).is_terminal
            go.touch()  # the run writes three more steps and ends
            wait_for("the later steps", lambda: loss_steps(port, tb_run) == [0, 1, 2, 3, 4, 5])
            seen["later"] = True
        except AssertionError as error:
            seen["error"] = error
        finally:
            os.kill(os.getpid(), signal.SIGINT)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    code = himl_tb(
        ["--config_file", str(write_config_json(tmp_path)), "--run_ids", ref.run_id,
         "--log_dir", "logs", "--port", str(port)]
    )  # fmt: skip
    watcher.join(30)

    assert "error" not in seen, seen.get("error")
    assert code == 0 and seen == {"running": True, "later": True}
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("1 event file(s) of 1 run(s) in ")
    assert f"  {ref} -> {ref.run_id}/" in out
    assert f"TensorBoard: http://127.0.0.1:{port}/  (Ctrl-C to stop)" in out
    assert out[-1].startswith("stopped; removed ")


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
