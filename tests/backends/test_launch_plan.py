"""The local launch and sweep plans: typed, versioned, exactly what crosses to another process."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from himl_tasks.backends.local.backend import LocalBackend
from himl_tasks.backends.local.clusters import Preemption, PreemptionMode
from himl_tasks.backends.local.launch_plan import (
    LAUNCH_PLAN_VERSION,
    LaunchInput,
    LaunchOutput,
    LaunchPlan,
)
from himl_tasks.backends.local.registry import DATABASE_NAME, Registry
from himl_tasks.backends.local.sweep_plan import SweepPlan
from himl_tasks.datasets import DatasetConfig
from himl_tasks.errors import ConfigurationError, InvalidInputError
from himl_tasks.job_spec import JobSpec, Priority
from tests.backends.conftest import write_script
from tests.conftest import write_tree


def a_launch_plan() -> LaunchPlan:
    return LaunchPlan(
        command=("python", "train.py", "--epochs", "3"),
        environment_variables={"MODE": "fast"},
        secret_variables={"TOKEN": "API_TOKEN"},
        extra_python_path=("/opt/himl",),
        num_nodes=2,
        processes_per_node=3,
        priority=Priority.LOW_PRIORITY,
        max_run_seconds=12600.0,
        preemption=Preemption(after_metric=("train_loss", 2), on_attempts=(1, 2), mode="restart"),
        inputs=(
            LaunchInput("scans", 3, "lake", "scans", use_mounting=True),
            LaunchInput("labels", 1, "workspaceblobstore", "labels/run_1", False, Path("/in")),
        ),
        outputs=(LaunchOutput("features", "lake"),),
        resume_from="exp:run_1",
    )


def test_a_launch_plan_round_trips_through_json_exactly() -> None:
    plan = a_launch_plan()

    again = LaunchPlan.from_json(plan.to_json())

    assert again == plan
    assert again.priority is Priority.LOW_PRIORITY
    assert again.preemption is not None and again.preemption.mode is PreemptionMode.RESTART
    assert again.preemption.after_metric == ("train_loss", 2)
    assert again.inputs[1].target_folder == Path("/in")
    assert json.loads(plan.to_json())["version"] == LAUNCH_PLAN_VERSION


@pytest.mark.parametrize("version", [None, LAUNCH_PLAN_VERSION + 1, "1"])
def test_a_launch_plan_of_another_version_is_refused(version: object) -> None:
    fields = json.loads(a_launch_plan().to_json())
    fields["version"] = version

    with pytest.raises(ConfigurationError, match="format version .* submit it again"):
        LaunchPlan.from_json(json.dumps(fields))


def test_the_preemption_mode_is_an_enum_and_text_is_still_accepted() -> None:
    assert Preemption(after_seconds=1, mode="restart").mode is PreemptionMode.RESTART
    assert Preemption(after_seconds=1).mode is PreemptionMode.FAIL
    assert Preemption(after_seconds=1, mode=PreemptionMode.RESTART).restarts
    with pytest.raises(InvalidInputError, match="'fail' or 'restart'"):
        Preemption(after_seconds=1, mode="pause")
    with pytest.raises(InvalidInputError, match="'fail' or 'restart'"):
        Preemption(after_seconds=1, mode=["restart"])  # type: ignore[arg-type]


def test_a_submitted_run_s_launch_plan_is_typed_in_the_registry(
    backend: LocalBackend, project: Path, tmp_path: Path
) -> None:
    backend.datastore().upload_folder(write_tree(tmp_path / "src", {"a.txt": b"x"}), "scans")
    backend.create_compute_cluster(
        "spot", preemption=Preemption(after_seconds=3600, mode="restart")
    )
    write_script(project, "train.py", "print('ok')\n")
    spec = JobSpec(
        entry_script="train.py",
        args=["--lr", "0.1"],
        snapshot_root=project,
        compute="spot",
        priority=Priority.LOW_PRIORITY,
        input_datasets=[DatasetConfig("scans", use_mounting=True)],
        output_datasets=["features"],
        max_run_duration="1h",
    )

    ref = backend.submit(spec)

    row = backend.registry.get_run(ref.run_id)
    assert row is not None
    plan = row.launch_plan
    assert plan.command[1:] == ("train.py", "--lr", "0.1")
    assert plan.inputs == (LaunchInput("scans", 1, "workspaceblobstore", "scans", True, None),)
    assert plan.outputs == (LaunchOutput("features", "workspaceblobstore"),)
    assert plan.priority is Priority.LOW_PRIORITY and plan.max_run_seconds == 3600.0
    assert plan.preemption == Preemption(after_seconds=3600, mode=PreemptionMode.RESTART)
    assert backend.wait(ref, timeout=60).status.is_terminal


def test_a_registry_from_before_the_launch_plan_opens_and_says_why_its_runs_cannot_start(
    tmp_path: Path,
) -> None:
    root = tmp_path / "workspace"
    Registry(root)  # the current schema, then turned back into the old one
    with sqlite3.connect(root / DATABASE_NAME) as db:
        db.execute("ALTER TABLE runs RENAME COLUMN launch_plan TO spec")
        db.execute(
            "INSERT INTO runs (run_id, experiment, display_name, compute, priority, status, "
            "tags, parameters, spec, run_dir, created_at) VALUES ('old', 'exp', 'old', "
            "'local', 'dedicated', 'Completed', '{}', '{}', '{\"command\": []}', '/x', 0)"
        )
    from himl_tasks.backends.local import registry as registry_module

    registry_module._READY.clear()

    row = Registry(root).get_run("old")

    assert row is not None and row.status.is_terminal
    with pytest.raises(ConfigurationError, match="another version of himl-tasks"):
        _ = row.launch_plan


def test_a_sweep_plan_round_trips_through_json_exactly(tmp_path: Path) -> None:
    plan = SweepPlan(
        trial_spec=JobSpec(
            entry_script="train.py",
            snapshot_root=tmp_path,
            input_datasets=[DatasetConfig("scans", version=2)],
            priority=Priority.LOW_PRIORITY,
            max_run_duration="2h",
        ),
        trials=({"--lr": 0.1, "--layers": 3}, {"--lr": 0.01, "--layers": 4}),
        primary_metric="val_loss",
        goal="minimize",
        max_concurrent_runs=2,
    )

    assert SweepPlan.from_json(plan.to_json()) == plan
    fields = json.loads(plan.to_json())
    fields["version"] = 0
    with pytest.raises(ConfigurationError, match="format version 0"):
        SweepPlan.from_json(json.dumps(fields))


@pytest.mark.parametrize(
    "fields",
    [{"version": LAUNCH_PLAN_VERSION}, {"version": LAUNCH_PLAN_VERSION, "command": 5}, []],
    ids=["fields-missing", "wrong-types", "not-an-object"],
)
def test_a_launch_plan_of_the_right_version_but_the_wrong_shape_is_refused_clearly(
    fields: object,
) -> None:
    with pytest.raises(ConfigurationError, match="launch plan"):
        LaunchPlan.from_json(json.dumps(fields))


@pytest.mark.parametrize("stored", ["not json{", '{"version": 1}', '{"secret_variables": 5}'])
def test_a_corrupted_launch_plan_fails_its_run_and_holds_up_no_other(
    backend: LocalBackend, project: Path, stored: str
) -> None:
    write_script(project, "slow.py", "import time; time.sleep(1)\n")
    write_script(project, "ok.py", "print('ok')\n")
    backend.create_compute_cluster("one", max_concurrent_runs=1)
    first = backend.submit(JobSpec(entry_script="slow.py", snapshot_root=project, compute="one"))
    broken = backend.submit(JobSpec(entry_script="ok.py", snapshot_root=project, compute="one"))
    with sqlite3.connect(backend.root / DATABASE_NAME) as db:
        db.execute("UPDATE runs SET launch_plan = ? WHERE run_id = ?", (stored, broken.run_id))

    after = backend.submit(
        JobSpec(entry_script="ok.py", args=["again"], snapshot_root=project, compute="one")
    )

    assert backend.wait(first, timeout=60).succeeded
    state = backend.wait(broken, timeout=60)
    assert state.status.value == "Failed"
    assert "launch plan" in (state.error or "")
    assert backend.wait(after, timeout=60).succeeded
    assert backend.registry.slot_holders("one") == []


@pytest.mark.parametrize(
    "fields",
    [{"version": 1}, {"version": 1, "trial_spec": {}, "trials": 5}],
    ids=["fields-missing", "wrong-types"],
)
def test_a_sweep_plan_of_the_right_version_but_the_wrong_shape_is_refused_clearly(
    fields: object,
) -> None:
    with pytest.raises(ConfigurationError, match="sweep's plan"):
        SweepPlan.from_json(json.dumps(fields))
