"""himl-download with hi-ml's flags, against real local runs and the AzureML stand-in."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from himl_tasks.backends.azureml_v1 import AzureMLV1Backend
from himl_tasks.backends.local.backend import LocalBackend
from himl_tasks.cli.download_command import main
from himl_tasks.job_spec import JobSpec
from himl_tasks.runs import RunRef
from tests.backends.azureml_service import FakeAzureMLService, Outcome
from tests.backends.conftest import write_script
from tests.conftest import read_tree
from tests.himl.workspace_places import seam_to, write_config_json

TRAIN = """
import sys
from pathlib import Path
Path("outputs/checkpoints").mkdir(parents=True)
Path("outputs/checkpoints/last.ckpt").write_bytes(b"weights " + sys.argv[1].encode())
Path("outputs/metrics.json").write_text('{"loss": 0.1}')
print("trained", sys.argv[1])
"""


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def train(project: Path, workspace: Path, seed: str, tags: dict[str, str] | None = None) -> RunRef:
    backend = LocalBackend(workspace)
    write_script(project, "train.py", TRAIN)
    spec = JobSpec(entry_script="train.py", snapshot_root=project, args=(seed,), tags=tags or {})
    ref = backend.submit(spec)
    assert backend.wait(ref, timeout=60).succeeded
    return ref


def run_console(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """himl-download as a user starts it: its own process, in the project folder."""
    return subprocess.run(
        [sys.executable, "-m", "himl_tasks.cli.download_command", *args],
        cwd=cwd,
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_most_recent_run_s_files_land_under_its_run_id_md5_checked(
    cwd_project: Path, workspace: Path
) -> None:
    ref = train(cwd_project, workspace, "1")

    done = run_console(cwd_project)  # no selector: most_recent_run.txt, as hi-ml

    assert done.returncode == 0, done.stderr
    got = read_tree(cwd_project / "outputs" / ref.run_id)
    assert got["outputs/checkpoints/last.ckpt"] == b"weights 1"
    assert got["outputs/metrics.json"] == b'{"loss": 0.1}'
    assert b"trained 1" in got["azureml-logs/70_driver_log.txt"]
    assert f"run {ref}: 3 file(s)" in done.stdout and "(3 MD5-checked)" in done.stdout


def test_prefix_and_output_dir_and_several_run_ids(
    cwd_project: Path, workspace: Path, tmp_path: Path
) -> None:
    first, second = train(cwd_project, workspace, "1"), train(cwd_project, workspace, "2")

    code = main(
        ["--run_ids", first.run_id, second.recovery_id, "--prefix", "outputs/checkpoints",
         "--output_dir", str(tmp_path / "got")]
    )  # fmt: skip

    assert code == 0
    assert read_tree(tmp_path / "got") == {
        f"{first.run_id}/outputs/checkpoints/last.ckpt": b"weights 1",
        f"{second.run_id}/outputs/checkpoints/last.ckpt": b"weights 2",
    }


def test_the_latest_runs_of_an_experiment_by_tags(
    cwd_project: Path, workspace: Path, tmp_path: Path
) -> None:
    old = train(cwd_project, workspace, "1", {"team": "a"})
    other = train(cwd_project, workspace, "2", {"team": "b"})
    new = train(cwd_project, workspace, "3", {"team": "a"})

    assert main(["--experiment", "train", "--output_dir", str(tmp_path / "latest")]) == 0
    assert names(tmp_path / "latest") == [new.run_id]
    code = main(
        ["--experiment", "train", "--tags", "team=a", "--num_runs", "5",
         "--output_dir", str(tmp_path / "a")]
    )  # fmt: skip
    assert code == 0
    assert names(tmp_path / "a") == sorted([old.run_id, new.run_id])
    assert other.run_id not in names(tmp_path / "a")


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--run_ids", "train_1_abc"], 1, "no run 'train_1_abc' in the workspace at"),
        ([], 1, "no run given and no most_recent_run.txt in"),
        (["--latest_run_file", "."], 2, "has no most_recent_run.txt: no run was submitted from"),
        (["--experiment", "nope"], 1, "no run in experiment 'nope' in the local workspace at "),
        (["--tags", "team=a"], 2, "--tags filter the runs of an experiment: give --experiment"),
        (["--run_ids", "a", "--experiment", "e"], 2, "--run_ids and --experiment both select"),
        (["--experiment", "e", "--num_runs", "0"], 2, "--num_runs must be 1 or more, not 0"),
        (["--run_ids", "a", "--num_runs", "0"], 2, ": --num_runs filter the runs of an exper"),
    ],
)
def test_bad_input_is_one_line_and_himl_s_exit_code_before_anything_is_written(
    cwd_project: Path, workspace: Path, args: list[str], code: int, message: str
) -> None:
    """As `himl`: 2 for bad usage, 1 for a run not found (himl_tasks.cli.exit_codes)."""
    done = run_console(cwd_project, *args)

    assert done.returncode == code
    assert done.stderr.startswith("himl-download: error: ") and message in done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert not (cwd_project / "outputs").exists()


def test_on_azureml_the_config_file_names_the_workspace(
    cwd_project: Path,
    aml: AzureMLV1Backend,
    aml_service: FakeAzureMLService,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    aml_service.next_outcome = Outcome(files={"outputs/model.pt": b"weights", "logs/x.txt": b"x"})
    write_script(cwd_project, "train.py", "print('hi')\n")
    (cwd_project / "environment.yml").write_text("name: job\ndependencies:\n  - python=3.11\n")
    ref = aml.submit(
        JobSpec(entry_script="train.py", snapshot_root=cwd_project, compute="cpu-cluster")
    )
    assert aml.wait(ref, timeout=30).succeeded
    seam = seam_to(aml, monkeypatch)
    config = write_config_json(tmp_path)

    code = main(
        ["--config_file", str(config), "--run_recovery_ids", ref.recovery_id, "--prefix",
         "outputs/", "--output_dir", str(tmp_path / "out")]
    )  # fmt: skip

    assert code == 0
    assert read_tree(tmp_path / "out") == {f"{ref.run_id}/outputs/model.pt": b"weights"}
    assert seam.calls == [{"aml_workspace": None, "config": config}]
    assert seam.sdks == ["v2"]  # hi-ml 0.5's default; its flags have no choice of SDK


def test_the_config_file_may_be_a_local_workspace_folder_as_himl_s_workspace(
    cwd_project: Path, workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--config_file` reads what `himl --workspace` reads (himl_tasks.cli.workspace)."""
    ref = train(cwd_project, workspace, "1")
    monkeypatch.setenv("HIML_HOME", str(tmp_path / "elsewhere"))

    done = run_console(cwd_project, "--config_file", str(workspace), "--output_dir", "got")

    assert done.returncode == 0, done.stderr
    assert (cwd_project / "got" / ref.run_id / "outputs/checkpoints/last.ckpt").is_file()
    missing = run_console(cwd_project, "--config_file", str(tmp_path / "nowhere"))
    assert missing.returncode == 2
    assert missing.stderr.startswith("himl-download: error: no workspace ")
