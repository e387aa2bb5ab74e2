"""Sweeps on the local backend: a parent run whose children are the trials."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import pytest

from himl_tasks import job_variables
from himl_tasks.backends.local import sweep_driver
from himl_tasks.backends.local.backend import LocalBackend
from himl_tasks.backends.local.launcher import default_cluster_limit
from himl_tasks.backends.local.sweep_plan import SWEEP_PLAN_FILE, TRIAL_SNAPSHOT_FOLDER, SweepPlan
from himl_tasks.errors import InvalidInputError
from himl_tasks.job_spec import JobSpec
from himl_tasks.runs import RunStatus
from himl_tasks.sweeps import (
    BanditPolicy,
    Choice,
    LogUniform,
    SweepSpec,
    cross_validation,
    sample_trials,
)
from tests.backends.conftest import write_script

SCORE = """\
    import argparse
    from himl_tasks.runtime import log_metric
    parser = argparse.ArgumentParser()
    parser.add_argument("--lr", type=float, default=0.0)
    parser.add_argument("--layers", type=int, default=0)
    parser.add_argument("--crossval_index", type=int, default=0)
    args = parser.parse_args()
    log_metric("val_loss", abs(args.lr - 0.01) + args.layers / 100 + args.crossval_index)
"""


def test_a_grid_sweep_runs_every_combination_as_children(
    backend: LocalBackend, project: Path
) -> None:
    write_script(project, "score.py", SCORE)
    sweep = SweepSpec(
        parameters={"lr": Choice(0.1, 0.01), "layers": Choice(1, 2, 3)},
        sampling="grid", primary_metric="val_loss", max_concurrent_runs=2,
    )  # fmt: skip
    parent = backend.submit_sweep(JobSpec(entry_script="score.py", snapshot_root=project), sweep)
    assert backend.wait(parent, timeout=120).succeeded
    # The sweep's run, as for any submission, beside the script; its trials do not replace it.
    assert (project / "most_recent_run.txt").read_text().strip() == parent.recovery_id
    children = backend.child_runs(parent)
    assert len(children) == 6
    assert all(backend.get_state(c).status is RunStatus.COMPLETED for c in children)
    argument_sets = {
        backend.registry.get_run(c.run_id).launch_plan.command[2:]  # type: ignore[union-attr]
        for c in children
    }
    assert ("--lr", "0.01", "--layers", "1") in argument_sets and len(argument_sets) == 6
    best = [m.value for m in backend.get_metrics(parent) if m.name == "best_val_loss"]
    assert best == [pytest.approx(0.01)]


def test_a_trial_whose_metric_is_nan_is_never_the_best(
    backend: LocalBackend, project: Path
) -> None:
    # A diverged trial logs NaN; min() and max() keep a NaN that comes first.
    write_script(project, "diverges.py", """
        import sys
        from himl_tasks.runtime import log_metric
        lr = float(sys.argv[2])
        log_metric("val_loss", float("nan") if lr == 0 else lr)
    """)  # fmt: skip
    sweep = SweepSpec(
        parameters={"lr": Choice(0.0, 0.5)}, sampling="grid", primary_metric="val_loss",
        max_concurrent_runs=1,
    )  # fmt: skip
    parent = backend.submit_sweep(JobSpec(entry_script="diverges.py", snapshot_root=project), sweep)

    assert backend.wait(parent, timeout=120).succeeded
    best = [m.value for m in backend.get_metrics(parent) if m.name == "best_val_loss"]
    assert best == [0.5]


def test_random_sampling_is_repeatable_and_bayesian_is_refused(
    backend: LocalBackend, project: Path
) -> None:
    sweep = SweepSpec(
        parameters={"lr": LogUniform(1e-4, 1e-1), "layers": Choice(1, 2)},
        sampling="random", primary_metric="val_loss", max_total_runs=5,
    )  # fmt: skip
    first, again = sample_trials(sweep, seed=3), sample_trials(sweep, seed=3)
    assert first == again and len(first) == 5
    assert all(1e-4 <= t["--lr"] <= 1e-1 and t["--layers"] in (1, 2) for t in first)  # type: ignore[operator]
    bayesian = SweepSpec(
        parameters={"lr": LogUniform(1e-4, 1e-1)}, sampling="bayesian",
        primary_metric="val_loss", max_total_runs=5,
    )  # fmt: skip
    with pytest.raises(InvalidInputError, match="grid and random only"):
        backend.submit_sweep(JobSpec(entry_script="x.py", snapshot_root=project), bayesian)


def test_cross_validation_and_canceling_the_parent_cancels_trials(
    backend: LocalBackend, project: Path
) -> None:
    write_script(project, "score.py", SCORE)
    folds = cross_validation(3, primary_metric="val_loss")
    parent = backend.submit_sweep(JobSpec(entry_script="score.py", snapshot_root=project), folds)
    assert backend.wait(parent, timeout=120).succeeded
    best = [m.value for m in backend.get_metrics(parent) if m.name == "best_val_loss"]
    assert best == [pytest.approx(0.01)]  # fold 0

    write_script(project, "slow.py", "import time\ntime.sleep(60)\n")
    slow = SweepSpec(
        parameters={"lr": Choice(1, 2)}, sampling="grid", primary_metric="val_loss",
        early_termination=BanditPolicy(slack_factor=0.1),
    )  # fmt: skip
    parent = backend.submit_sweep(JobSpec(entry_script="slow.py", snapshot_root=project), slow)
    while len(backend.child_runs(parent)) < 2:
        assert not backend.get_state(parent).is_terminal
        time.sleep(0.02)
    backend.cancel(parent)
    assert backend.wait(parent, timeout=30).status is RunStatus.CANCELED
    for child in backend.child_runs(parent):
        assert backend.wait(child, timeout=30).status is RunStatus.CANCELED


def test_the_sweep_driver_cancels_its_trials_and_fails_at_its_deadline(
    backend: LocalBackend, project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The driver waits for its trials in the one polling loop, with a deadline like every wait;
    # it runs here, in the test's process, as the job of a parent run that keeps running.
    write_script(project, "forever.py", "import time\ntime.sleep(600)\n")
    spec = JobSpec(entry_script="forever.py", snapshot_root=project)
    parent = backend.submit(spec)
    plan = SweepPlan(
        trial_spec=spec,
        trials=({"--lr": 0.1}, {"--lr": 0.2}),
        primary_metric="loss",
        goal="minimize",
        max_concurrent_runs=1,
    )
    plan_file = tmp_path / SWEEP_PLAN_FILE
    plan_file.write_text(plan.to_json(), encoding="utf-8")
    shutil.copytree(project, tmp_path / TRIAL_SNAPSHOT_FOLDER)  # as submit_sweep puts it there
    monkeypatch.setenv(job_variables.WORKSPACE, str(backend.root))
    monkeypatch.setenv(job_variables.RUN_ID, parent.run_id)
    monkeypatch.setattr(sweep_driver, "DEADLINE_SECONDS", 2.0)
    monkeypatch.setattr(sweep_driver.signal, "signal", lambda *args: None)  # not the test's
    exit_codes: list[int] = []
    driver = threading.Thread(
        target=lambda: exit_codes.append(sweep_driver.main(str(plan_file))), daemon=True
    )
    try:
        driver.start()
        driver.join(timeout=60)
        assert exit_codes == [1]
        trials = backend.child_runs(parent)
        assert len(trials) == 1  # one at a time: the second trial never started
        assert backend.wait(trials[0], timeout=60).status is RunStatus.CANCELED
    finally:
        backend.cancel(parent)
        for trial in backend.child_runs(parent):
            backend.cancel(trial)


def test_a_choice_given_one_list_chooses_among_its_values_as_azureml_s_choice_does() -> None:
    # hi-ml's documentation writes choice([0.1, 0.01, 0.001]); AzureML reads the list's values.
    assert Choice([0.1, 0.01]) == Choice(0.1, 0.01)
    assert Choice(range(1, 3)).values == (1, 2)
    sweep = SweepSpec(parameters={"lr": Choice([0.1, 0.01])}, sampling="grid", primary_metric="m")
    assert sample_trials(sweep) == [{"--lr": 0.1}, {"--lr": 0.01}]
    for values in ((0.1, [0.01]), ({"a": 1},), (None,), ([],)):
        with pytest.raises(InvalidInputError, match="Choice"):
            Choice(*values)


def test_every_trial_runs_the_code_the_sweep_was_submitted_with(
    backend: LocalBackend, project: Path
) -> None:
    write_script(project, "jobs/trial.py", "import time\nprint('version A')\ntime.sleep(1)\n")
    sweep = SweepSpec(
        parameters={"lr": Choice(1, 2)}, sampling="grid", primary_metric="m",
        max_concurrent_runs=1,
    )  # fmt: skip
    parent = backend.submit_sweep(
        JobSpec(entry_script="jobs/trial.py", snapshot_root=project), sweep
    )
    # The project changes while the first trial runs (an edit, a checkout, a deleted folder).
    write_script(project, "jobs/trial.py", "print('version B')\n")

    assert backend.wait(parent, timeout=120).succeeded
    children = backend.child_runs(parent)
    assert len(children) == 2
    assert [list(backend.iter_logs(child)) for child in children] == [["version A"]] * 2


def test_sweeps_submitted_together_never_hold_the_slots_their_trials_need(
    backend: LocalBackend, project: Path
) -> None:
    # As many sweeps as the default cluster has slots: drivers holding those slots would
    # leave their trials queued for ever.
    slots = default_cluster_limit()
    if slots > 4:
        pytest.skip(f"would run {slots} sweeps at once on this machine")
    write_script(project, "score.py", SCORE)
    sweep = SweepSpec(parameters={"lr": Choice(0.1)}, sampling="grid", primary_metric="val_loss")
    spec = JobSpec(entry_script="score.py", snapshot_root=project)

    sweeps = [backend.submit_sweep(spec, sweep) for _ in range(slots)]

    try:
        assert all(backend.wait(s, timeout=60).succeeded for s in sweeps)
    finally:
        for each in sweeps:
            backend.cancel(each)
