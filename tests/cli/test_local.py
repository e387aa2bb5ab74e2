"""`himl` against real local runs (subprocesses of the embedded backend)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from himl_tasks.backends.local.backend import LocalBackend
from himl_tasks.job_spec import JobSpec
from himl_tasks.runs import RunRef, RunStatus
from himl_tasks.sweeps import Choice, SweepSpec
from tests.cli.conftest import himl, project, submit


def _three_runs(local: LocalBackend, tmp_path: Path) -> list[RunRef]:
    folder = project(tmp_path)
    refs = [
        submit(local, folder, "--lr", "0.1", display_name="lr-0.1", tags={"lr": "0.1"}),
        submit(local, folder, "--lr", "0.01", display_name="lr-0.01", tags={"lr": "0.01"}),
        submit(local, folder, "--fail", experiment="broken", display_name="oops"),
    ]
    for ref in refs:
        local.wait(ref, timeout=60)
    return refs


def test_status_over_patterns_of_several_runs(local: LocalBackend, tmp_path: Path) -> None:
    first, second, failed = _three_runs(local, tmp_path)

    code, out, _ = himl(local, "status", "all", "--json")
    rows = json.loads(out)
    assert code == 0
    assert [row["run_id"] for row in rows] == [first.run_id, second.run_id, failed.run_id]
    assert rows[2]["status"] == "Failed" and rows[2]["failure_kind"] == "user_error"
    assert rows[0]["display_name"] == "lr-0.1" and rows[0]["attempt"] == 1
    assert rows[0]["portal_url"].startswith("file://") and rows[0]["started"]
    assert rows[0]["duration"].count(":") == 2

    def ids(*patterns: str) -> list[str]:
        code, out, _ = himl(local, "status", *patterns, "--json")
        assert code == 0
        return [row["run_id"] for row in json.loads(out)]

    assert ids("digits") == [first.run_id, second.run_id]  # experiment, by prefix
    assert ids("lr-0.0*") == [second.run_id]  # display name, by glob
    assert ids("lr=0.1") == [first.run_id]  # tag key=value
    assert ids(failed.recovery_id) == [failed.run_id]
    assert ids(first.run_id[:-4]) == [first.run_id]  # run id, by prefix
    assert ids("oops", "lr-0.1", "oops") == [first.run_id, failed.run_id]  # each once, in order

    code, out, _ = himl(local, "status", "digits")
    assert code == 0
    assert "lr-0.01" in out and "Completed" in out and first.run_id in out


def test_job_folders_holding_most_recent_run(local: LocalBackend, tmp_path: Path) -> None:
    jobs = tmp_path / "jobs"
    one = submit(local, project(jobs, "job_a"))
    two = submit(local, project(jobs, "job_b"))
    local.wait(one, timeout=60)
    local.wait(two, timeout=60)

    def ids(pattern: str) -> list[str]:
        code, out, err = himl(local, "status", pattern, "--json")
        assert code == 0, err
        return [row["run_id"] for row in json.loads(out)]

    assert ids(str(jobs / "job_a")) == [one.run_id]
    assert ids(str(jobs / "job_")) == [one.run_id, two.run_id]  # a folder prefix
    assert ids(str(jobs / "*_b")) == [two.run_id]  # a folder glob


def test_bad_input_is_one_line_and_a_meaningful_exit_code(
    local: LocalBackend, tmp_path: Path
) -> None:
    ref = submit(local, project(tmp_path))
    local.wait(ref, timeout=60)
    (tmp_path / "not_a_job").mkdir()

    cases = {
        ("status", "lr=["): (2, "malformed pattern 'lr=['"),
        ("status", ""): (2, "empty pattern"),
        ("status", str(tmp_path / "not_a_job")): (2, "holds no most_recent_run.txt"),
        ("status", "nothing_like_it"): (1, f"no run matches 'nothing_like_it' in the local "
                                           f"workspace at {local.root}"),
        ("logs", "digits:no_such_run"): (1, f"workspace at {local.root}"),
        ("status", str(tmp_path / "nowhere") + "/"): (1, "no folder matches"),
        ("bogus",): (2, "No such command"),
    }  # fmt: skip
    for args, (expected_code, message) in cases.items():
        code, out, err = himl(local, *args)
        assert code == expected_code, (args, out, err)
        assert message in err, (args, err)
        assert "Traceback" not in err


def test_an_unknown_workspace_is_named(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from himl_tasks.cli.app import app

    empty = tmp_path / "empty"
    empty.mkdir()
    for workspace, message in (
        (tmp_path / "nowhere", "no workspace"),
        (empty, "is not a local workspace: it holds no registry.sqlite"),
    ):
        result = CliRunner().invoke(app, ["--workspace", str(workspace), "status", "all"])
        assert result.exit_code == 2
        assert message in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "nowhere").exists() and list(empty.iterdir()) == []


def test_the_workspace_before_or_after_the_command(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from himl_tasks.cli.app import app

    one, two = LocalBackend(tmp_path / "one"), LocalBackend(tmp_path / "two")
    after = CliRunner().invoke(app, ["status", "all", "--workspace", str(one.root)])
    assert after.exit_code == 1
    assert after.stderr == f"himl: no run matches 'all' in the local workspace at {one.root}\n"
    same = CliRunner().invoke(app, ["-w", str(one.root), "status", "all", "-w", str(one.root)])
    assert same.exit_code == 1 and str(one.root) in same.stderr
    both = CliRunner().invoke(app, ["-w", str(one.root), "status", "all", "-w", str(two.root)])
    assert both.exit_code == 2
    assert both.stderr == (
        f"himl: --workspace given twice, '{one.root}' before the command and '{two.root}' "
        "after it: give one\n"
    )


def test_logs_and_logs_follow_until_the_end(local: LocalBackend, tmp_path: Path) -> None:
    folder = project(tmp_path)
    done = submit(local, folder)
    local.wait(done, timeout=60)
    code, out, _ = himl(local, "logs", done.run_id)
    assert code == 0
    assert out.splitlines()[0] == "epoch 0 loss 1.100" and len(out.splitlines()) == 5

    slow = submit(local, folder, "--slow", display_name="slow")
    assert not local.get_state(slow).is_terminal
    code, out, err = himl(local, "logs", "slow", "-f", "--timeout", "60")
    assert code == 0
    assert [line.split()[1] for line in out.splitlines()] == ["0", "1", "2", "3", "4"]
    assert local.get_state(slow).status is RunStatus.COMPLETED
    assert f"run {slow} ended Completed" in err


def test_logs_follow_has_a_deadline(local: LocalBackend, tmp_path: Path) -> None:
    ref = submit(local, project(tmp_path), "--forever")
    try:
        code, _, err = himl(local, "logs", ref.run_id, "-f", "--timeout", "1")
        assert code == 1 and "still going after 1 s" in err
    finally:
        local.cancel(ref)
        local.wait(ref, timeout=60)


def test_results_download_with_checksums(local: LocalBackend, tmp_path: Path) -> None:
    ref = submit(local, project(tmp_path), "--lr", "0.5")
    local.wait(ref, timeout=60)
    dest = tmp_path / "got"

    code, out, _ = himl(local, "results", ref.recovery_id, "--dest", str(dest))

    assert code == 0
    assert (dest / "outputs" / "model.txt").read_text() == "weights lr=0.5\n"
    assert "1 file(s)" in out and "checksums checked" in out
    code, _, err = himl(local, "results", ref.run_id, "--prefix", "outputs/nothing", "--dest",
                        str(dest))  # fmt: skip
    assert code == 1 and "Traceback" not in err
    code, _, err = himl(local, "results", ref.run_id, "--prefix", "../etc", "--dest", str(dest))
    assert code == 2


def test_cancel_asks_before_several(local: LocalBackend, tmp_path: Path) -> None:
    folder = project(tmp_path)
    refs = [submit(local, folder, "--forever", tags={"sweep": "s1"}) for _ in range(2)]
    try:
        code, out, err = himl(local, "cancel", "sweep=s1", input="n\n")
        assert code == 1 and "nothing canceled" in err
        assert all(not local.get_state(ref).is_terminal for ref in refs)

        code, out, _ = himl(local, "cancel", "sweep=s1", "--yes")
        assert code == 0
        assert all(f"canceled {ref}" in out for ref in refs)
        for ref in refs:
            assert local.wait(ref, timeout=60).status is RunStatus.CANCELED
        code, out, _ = himl(local, "cancel", "sweep=s1")
        assert code == 0 and "nothing to cancel" in out
    finally:
        for ref in refs:
            local.cancel(ref)


def test_metrics_side_by_side_with_the_best_marked(local: LocalBackend, tmp_path: Path) -> None:
    first, second, _ = _three_runs(local, tmp_path)

    code, out, _ = himl(local, "metrics", "digits", "--best", "loss")

    assert code == 0
    lines = out.splitlines()
    best = next(line for line in lines if second.recovery_id in line)
    other = next(line for line in lines if first.recovery_id in line)
    assert f"{second.recovery_id} *" in best and "*" not in other.replace("┃", "")
    assert "█▄▂▁▁ 0.21" in best  # 1/(e+1) + 0.01 over five epochs: its curve and last value
    code, out, _ = himl(local, "metrics", first.run_id, "--json")
    loss = json.loads(out)[first.recovery_id]["loss"]
    assert [step for step, _ in loss] == [0, 1, 2, 3, 4]
    assert abs(loss[-1][1] - 0.3) < 1e-9
    # A metric no run logged was taken without a word: no run marked, exit code 0.
    code, _, err = himl(local, "metrics", "digits", "--best", "accuracy")
    assert code == 2
    assert err == (
        "himl: --best 'accuracy': none of the runs logged that metric; they logged: loss\n"
    )


def test_datasets_and_datastores(local: LocalBackend, tmp_path: Path) -> None:
    store = local.datastore()
    source = tmp_path / "data"
    source.mkdir()
    (source / "a.csv").write_text("1\n")
    store.upload_folder(source, "digits/v1")
    store.upload_folder(source, "digits/v2")
    local.register_dataset("digits", "", "digits/v1")
    local.register_dataset("digits", "", "digits/v2", created_by_run="prep_1_abc")

    code, out, _ = himl(local, "datasets", "digits", "--json")
    assert code == 0
    assert [(row["version"], row["path"], row["created_by_run"]) for row in json.loads(out)] == [
        (1, "digits/v1", None),
        (2, "digits/v2", "prep_1_abc"),
    ]
    code, out, _ = himl(local, "datasets", "digits")
    assert "created by run" in out and "prep_1_abc" in out
    local.register_dataset("other", "", "digits/v1")
    code, out, _ = himl(local, "datasets", "--json")
    assert [(row["name"], row["version"]) for row in json.loads(out)] == [
        ("digits", 2),
        ("other", 1),
    ]
    code, _, err = himl(local, "datasets", "nope")
    assert code == 1 and "nope" in err
    code, out, _ = himl(local, "datastores", "--json")
    assert code == 0 and json.loads(out)[0]["name"] == store.name
    code, _, err = himl(local, "datastores", "nope")
    assert code == 2 and "nope" in err


def test_the_console_script_in_a_real_process(local: LocalBackend, tmp_path: Path) -> None:
    ref = submit(local, project(tmp_path))
    local.wait(ref, timeout=60)
    env = {**os.environ, "HIML_HOME": str(local.root)}

    found = subprocess.run(
        [sys.executable, "-m", "himl_tasks.cli", "status", ref.run_id],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60, check=False,
    )  # fmt: skip
    missing = subprocess.run(
        [sys.executable, "-m", "himl_tasks.cli", "status", "no_such_run"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60, check=False,
    )  # fmt: skip

    assert found.returncode == 0 and ref.run_id in found.stdout and "Completed" in found.stdout
    assert missing.returncode == 1
    assert missing.stderr.strip().splitlines() == [
        f"himl: no run matches 'no_such_run' in the local workspace at {local.root}"
    ]


CHECKPOINTING = """
    import sys
    from pathlib import Path
    folder = Path("outputs/checkpoints")
    found = sorted(folder.glob("recovery_epoch=*.ckpt")) if folder.is_dir() else []
    start = int(found[-1].stem.split("=")[1]) + 1 if found else 0
    print(f"starting at epoch {start}", flush=True)
    folder.mkdir(parents=True, exist_ok=True)
    for epoch in range(start, start + 2):
        (folder / f"recovery_epoch={epoch}.ckpt").write_text(str(epoch))
    if start == 0:
        raise SystemExit(3)
"""


def test_resubmit_resumes_from_the_lost_runs_checkpoints(
    local: LocalBackend, tmp_path: Path
) -> None:
    folder = project(tmp_path)
    (folder / "train.py").write_text(textwrap.dedent(CHECKPOINTING), encoding="utf-8")
    lost = submit(local, folder, display_name="lost", tags={"lr": "0.1"})
    assert local.wait(lost, timeout=60).status is RunStatus.FAILED

    code, out, err = himl(local, "resubmit", "lost")

    assert code == 0, err
    new_id = out.split(" as ")[-1].strip()
    assert out.strip() == f"resubmitted {lost} as {new_id}"
    new = local.get_run_ref(new_id)
    assert local.wait(new, timeout=60).succeeded
    assert list(local.iter_logs(new)) == ["starting at epoch 2"]
    assert local.submitted_spec(new).resume_from == lost.recovery_id
    assert local.run_tags(new)["lr"] == "0.1"


def test_resubmit_refuses_a_run_still_going(local: LocalBackend, tmp_path: Path) -> None:
    ref = submit(local, project(tmp_path), "--forever")
    try:
        code, _, err = himl(local, "resubmit", ref.run_id)
        assert code == 2 and "still going" in err
        assert [run.ref for run in local.list_runs()] == [ref]
    finally:
        local.cancel(ref)
        local.wait(ref, timeout=60)


def test_resubmit_of_a_run_whose_job_spec_is_damaged_names_the_file(
    local: LocalBackend, tmp_path: Path
) -> None:
    # Bytes that are no text were a UnicodeDecodeError traceback, a folder there an
    # IsADirectoryError one; JSON that is no job spec did not say which file it was.
    ref = submit(local, project(tmp_path))
    local.wait(ref, timeout=60)
    spec = local.root / "runs" / ref.run_id / "job_spec.json"
    for damage, why in (
        (b"\x87\xff", "cannot be read (UnicodeDecodeError)"),
        (b"{}", "is damaged"),
    ):
        spec.write_bytes(damage)
        code, out, err = himl(local, "resubmit", ref.run_id)
        assert code == 2 and out == ""
        assert err.startswith(f"himl: run '{ref}': its job spec {spec} {why}")
        assert err.endswith(f"submit its script again with resume_from='{ref}'\n")
    spec.unlink()
    spec.mkdir()
    code, _, err = himl(local, "resubmit", ref.run_id)
    assert code == 2 and "cannot be read (IsADirectoryError)" in err
    assert [run.ref for run in local.list_runs()] == [ref]


def test_metrics_of_a_sweep_one_row_per_trial(local: LocalBackend, tmp_path: Path) -> None:
    sweep = SweepSpec(
        parameters={"lr": Choice(0.1, 0.01, 0.5)}, sampling="grid", primary_metric="loss"
    )
    folder = project(tmp_path)
    parent = local.submit_sweep(
        JobSpec(entry_script=folder / "train.py", snapshot_root=folder, experiment="digits"), sweep
    )
    assert local.wait(parent, timeout=120).succeeded
    trials = local.child_runs(parent)

    code, out, _ = himl(local, "metrics", parent.run_id, "--best", "loss")

    assert code == 0
    rows = [line for line in out.splitlines() if "digits:" in line and "│" in line]
    assert [row.split()[1] for row in rows] == [ref.recovery_id for ref in [parent, *trials]]
    best = next(row for row in rows if row.split()[1] + " *" in row)
    assert "0.21" in best  # lr 0.01: 1/5 + 0.01, the lowest last loss


def test_hostile_patterns_and_a_downloaded_run_folder_in_the_current_folder(
    local: LocalBackend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ref = submit(local, project(tmp_path))
    local.wait(ref, timeout=60)
    monkeypatch.chdir(tmp_path)
    # A name longer than a file name may be (it was an OSError traceback) and one longer than the
    # terminal: one line each (rich wrapped long messages over several lines).
    for pattern in ("a" * 300, "x/" + "a" * 300, "b" * 5000):
        code, _, err = himl(local, "status", pattern)
        assert code == 1 and err.startswith("himl: no ") and err.count("\n") == 1, err[:200]
    # `himl results RUN` downloads into ./RUN; RUN still names the run afterwards (it was taken
    # for a job folder without most_recent_run.txt: logs, status, metrics of RUN all failed).
    code, _, err = himl(local, "results", ref.run_id)
    assert code == 0 and (tmp_path / ref.run_id / "outputs" / "model.txt").is_file(), err
    code, out, err = himl(local, "logs", ref.run_id)
    assert code == 0 and "epoch 4 loss" in out, err
    # Written as a folder (with a '/'), it is still a folder: one without the file is refused.
    code, _, err = himl(local, "status", f"./{ref.run_id}")
    assert code == 2 and "holds no most_recent_run.txt" in err


def test_rich_markup_in_names_is_shown_as_written(local: LocalBackend, tmp_path: Path) -> None:
    # Display names, tags and metric names are the user's text; in rich tables they were read
    # as markup: '[/bold]' was a MarkupError traceback, '[red]' styled the cell.
    folder = project(tmp_path)
    (folder / "train.py").write_text(
        "from himl_tasks.runtime import log_metric\nlog_metric('[/m]', 1.0, step=0)\n"
    )
    ref = submit(local, folder, display_name="[/bold] [red]x", tags={"[k]": "[/v]"})
    local.wait(ref, timeout=60)
    for command in ("status", "metrics"):
        code, out, err = himl(local, command, "all")
        assert code == 0, err
        assert "[/bold] [red]x" in out, out
    code, out, _ = himl(local, "metrics", "all")
    assert "[/m]" in out
    code, out, err = himl(
        local, "results", ref.run_id, "--prefix", "", "--dest", str(tmp_path / "[/d]")
    )
    assert code == 0 and "[/d]" in out, err
    # A dataset's folder in its datastore is the user's text too (the table printed it as markup).
    source = tmp_path / "data"
    source.mkdir()
    (source / "a.csv").write_text("1\n")
    local.datastore().upload_folder(source, "[/p] [red]v1")
    local.register_dataset("marked", "", "[/p] [red]v1")
    code, out, err = himl(local, "datasets")
    assert code == 0 and "[/p] [red]v1" in out, err
