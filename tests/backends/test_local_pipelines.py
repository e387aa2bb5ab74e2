"""Pipelines on the local backend: a driver run whose children are the steps, real subprocesses."""

from __future__ import annotations

import dataclasses
import json
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from himl_tasks import job_variables
from himl_tasks.backends.base import Backend
from himl_tasks.backends.local import backend as backend_module
from himl_tasks.backends.local import pipeline_driver
from himl_tasks.backends.local.backend import LocalBackend
from himl_tasks.backends.local.launcher import default_cluster_limit
from himl_tasks.backends.local.pipeline_plan import (
    PIPELINE_PLAN_FILE,
    STEP_SNAPSHOTS_FOLDER,
    PipelinePlan,
    PlannedStep,
)
from himl_tasks.datasets import DatasetConfig, ResolvedDataset
from himl_tasks.errors import ConfigurationError, InvalidInputError, NotSupportedError
from himl_tasks.job_spec import JobSpec
from himl_tasks.pipeline_runs import StepRun
from himl_tasks.pipelines import PipelineSpec, PipelineStep
from himl_tasks.runs import RunRef, RunStatus
from tests.backends.conftest import write_script

PREPROCESS = """\
    from himl_tasks.runtime import get_run_info
    info = get_run_info()
    source, target = info.input_datasets[0], info.output_datasets[0]
    (target / "a.txt").write_text((source / "a.txt").read_text().upper())
"""
TRAIN = """\
    from himl_tasks.runtime import get_run_info
    print("train read", (get_run_info().input_datasets[0] / "a.txt").read_text(), flush=True)
"""


def chain(project: Path, preprocess: str = PREPROCESS, train: str = TRAIN) -> PipelineSpec:
    """preprocess (raw -> features), then train (reads features)."""
    write_script(project, "preprocess.py", preprocess)
    write_script(project, "train.py", train)
    prepare = JobSpec(
        entry_script="preprocess.py", snapshot_root=project, input_datasets=["raw"],
        output_datasets=["features"],
    )  # fmt: skip
    fit = JobSpec(entry_script="train.py", snapshot_root=project, input_datasets=["features"])
    return PipelineSpec(
        "preprocess-then-train",
        [PipelineStep("preprocess", prepare), PipelineStep("train", fit)],
        existing_datasets=["raw"],
    )


def put_dataset(backend: LocalBackend, name: str, text: str, *, register: bool = True) -> None:
    """A folder `name/<text>/` of one file, a.txt, in the default datastore, registered as the
    dataset's next version (unless `register` is False)."""
    source = backend.root.parent / f"source-{name}-{text}"
    source.mkdir()
    (source / "a.txt").write_text(text)
    backend.datastore().upload_folder(source, f"{name}/{text}")
    if register:
        backend.register_dataset(name, "", f"{name}/{text}")


def steps_of(backend: LocalBackend, pipeline: RunRef) -> dict[str, RunRef]:
    """The pipeline's step runs by step name, in the order they were started."""
    return {backend.run_tags(c)["pipeline_step"]: c for c in backend.child_runs(pipeline)}


def log_of(backend: LocalBackend, ref: RunRef) -> str:
    return backend.read_log(ref, 0).decode()


def test_a_step_reads_the_exact_version_its_upstream_step_registered(
    backend: LocalBackend, project: Path
) -> None:
    put_dataset(backend, "raw", "abc")
    put_dataset(backend, "features", "old")  # version 1: not what train must read

    pipeline = backend.submit_pipeline(chain(project))

    state = backend.wait(pipeline, timeout=120)
    assert state.status is RunStatus.COMPLETED, log_of(backend, pipeline)
    steps = steps_of(backend, pipeline)
    assert list(steps) == ["preprocess", "train"]
    assert all(backend.get_state(ref).succeeded for ref in steps.values())
    [written] = backend.run_outputs(steps["preprocess"])
    assert (written.name, written.version) == ("features", 2)
    read = backend.submitted_spec(steps["train"]).input_datasets
    assert [(c.name, c.version) for c in read] == [("features", 2)]
    assert "train read ABC" in log_of(backend, steps["train"])
    # The steps are children in the pipeline's experiment, started in order.
    train, preprocess = backend.get_state(steps["train"]), backend.get_state(steps["preprocess"])
    assert preprocess.ended_at and train.started_at and preprocess.ended_at <= train.started_at
    assert {ref.experiment for ref in steps.values()} == {pipeline.experiment}


def test_a_failed_step_stops_its_dependants_and_fails_the_pipeline(
    backend: LocalBackend, project: Path
) -> None:
    put_dataset(backend, "raw", "abc")
    failing = chain(project, preprocess="import sys\nsys.exit(3)\n")

    pipeline = backend.submit_pipeline(failing)

    assert backend.wait(pipeline, timeout=120).status is RunStatus.FAILED
    steps = steps_of(backend, pipeline)
    assert list(steps) == ["preprocess"]  # train was never started: it has no run
    assert backend.get_state(steps["preprocess"]).status is RunStatus.FAILED
    assert "steps never started: train" in log_of(backend, pipeline)
    assert backend.dataset_versions("features") == []


def test_a_step_after_a_failed_one_never_starts_though_it_reads_none_of_its_outputs(
    backend: LocalBackend, project: Path
) -> None:
    write_script(project, "fail.py", "import sys\nsys.exit(1)\n")
    write_script(project, "ok.py", "print('ok')\n")
    spec = PipelineSpec(
        "ordered",
        [
            PipelineStep("first", JobSpec(entry_script="fail.py", snapshot_root=project)),
            PipelineStep(
                "second", JobSpec(entry_script="ok.py", snapshot_root=project), after=["first"]
            ),
        ],
    )

    pipeline = backend.submit_pipeline(spec)

    assert backend.wait(pipeline, timeout=120).status is RunStatus.FAILED
    assert list(steps_of(backend, pipeline)) == ["first"]


def test_steps_reading_one_existing_dataset_read_one_version(
    backend: LocalBackend, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    put_dataset(backend, "raw", "abc")
    write_script(project, "read.py", TRAIN)
    resolve = backend.resolve_dataset

    def a_new_version_lands_after_each_lookup(config: DatasetConfig) -> ResolvedDataset:
        found = resolve(config)
        put_dataset(backend, "raw", f"v{found.version + 1}")  # someone else registers one
        return found

    monkeypatch.setattr(backend, "resolve_dataset", a_new_version_lands_after_each_lookup)
    reader = JobSpec(entry_script="read.py", snapshot_root=project, input_datasets=["raw"])
    spec = PipelineSpec(
        "two_readers",
        [PipelineStep("one", reader), PipelineStep("two", reader)],
        existing_datasets=["raw"],
    )

    pipeline = backend.submit_pipeline(spec)

    assert backend.wait(pipeline, timeout=120).succeeded
    steps = steps_of(backend, pipeline)
    read = {
        name: backend.submitted_spec(ref).input_datasets[0].version for name, ref in steps.items()
    }
    assert read == {"one": 1, "two": 1}


def test_canceling_the_pipeline_cancels_its_running_step(
    backend: LocalBackend, project: Path
) -> None:
    put_dataset(backend, "raw", "abc")
    pipeline = backend.submit_pipeline(chain(project, preprocess="import time\ntime.sleep(60)\n"))
    deadline = time.monotonic() + 60
    while not (
        (steps := steps_of(backend, pipeline))
        and backend.get_state(steps["preprocess"]).status is RunStatus.RUNNING
    ):
        assert time.monotonic() < deadline and not backend.get_state(pipeline).is_terminal
        time.sleep(0.05)

    backend.cancel(pipeline)

    assert backend.wait(pipeline, timeout=30).status is RunStatus.CANCELED
    assert backend.wait(steps["preprocess"], timeout=30).status is RunStatus.CANCELED
    time.sleep(0.5)  # a driver that went on would start train now
    assert list(steps_of(backend, pipeline)) == ["preprocess"]


def test_a_resubmitted_submission_id_finds_the_same_pipeline_run(
    backend: LocalBackend, project: Path
) -> None:
    put_dataset(backend, "raw", "abc")
    spec = chain(project)

    first = backend.submit_pipeline(spec, submission_id="nightly-2026-12-01")
    again = backend.submit_pipeline(spec, submission_id="nightly-2026-12-01")

    assert again == first
    assert backend.wait(first, timeout=120).succeeded
    assert backend.submit_pipeline(spec, submission_id="nightly-2026-12-01") == first
    parents = [r for r in backend.list_runs() if r.parent_run_id is None]
    assert [r.state.ref for r in parents if r.tags.get("pipeline")] == [first]
    assert len(backend.child_runs(first)) == 2


def test_a_pipeline_whose_step_cannot_run_is_refused_before_anything_is_written(
    backend: LocalBackend, project: Path
) -> None:
    # The second step's cluster does not exist: nothing is resolved, registered or run.
    put_dataset(backend, "raw", "abc", register=False)  # a folder: would become version 1
    spec = chain(project)
    broken = PipelineSpec(
        spec.name,
        [spec.steps[0], PipelineStep("train", JobSpec(
            entry_script="train.py", snapshot_root=project, input_datasets=["features"],
            compute="no-such-cluster",
        ))],
        existing_datasets=["raw"],
    )  # fmt: skip
    with pytest.raises(LookupError, match="no-such-cluster"):
        backend.submit_pipeline(broken)
    with pytest.raises(InvalidInputError, match="a pipeline is a PipelineSpec"):
        backend.submit_pipeline(spec.steps[0])  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="submission_id"):
        backend.submit_pipeline(spec, submission_id="")
    assert backend.list_runs() == []
    assert backend.dataset_names() == []


def test_the_default_of_a_backend_without_pipelines_refuses_before_anything_is_done(
    backend: LocalBackend, project: Path
) -> None:
    # Backend's own methods, as a backend that does not override them has them.
    with pytest.raises(NotSupportedError, match="does not run pipelines yet"):
        Backend.submit_pipeline(backend, chain(project))
    with pytest.raises(NotImplementedError):  # what a Python programmer would catch
        Backend.publish_pipeline(backend, chain(project))
    assert backend.list_runs() == []


def test_a_pipeline_plan_round_trips_through_json_and_another_format_is_refused(
    project: Path,
) -> None:
    write_script(project, "train.py", TRAIN)
    inputs = [DatasetConfig("raw", version=3), DatasetConfig("features")]
    train = JobSpec(entry_script="train.py", snapshot_root=project, input_datasets=inputs)
    pipeline = PipelineSpec(
        "one_step",
        [PipelineStep("train", train, allow_reuse=False)],
        existing_datasets=["raw", "features"],
    )
    plan = PipelinePlan(
        pipeline=pipeline, steps=(PlannedStep("train", train, ("preprocess",), "1", "d", False),)
    )

    assert PipelinePlan.from_json(plan.to_json()) == plan
    fields = json.loads(plan.to_json())
    fields["version"] = 0
    with pytest.raises(ConfigurationError, match="format version 0"):
        PipelinePlan.from_json(json.dumps(fields))
    with pytest.raises(ConfigurationError, match="pipeline's plan"):
        PipelinePlan.from_json(json.dumps({"version": 2, "steps": [{"name": "x"}]}))


def test_the_pipeline_driver_cancels_its_steps_and_fails_at_its_deadline(
    backend: LocalBackend, project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The driver waits in the one polling loop, with a deadline like every wait; it runs here,
    # in the test's process, as the job of a pipeline run that keeps running.
    write_script(project, "forever.py", "import time\ntime.sleep(600)\n")
    spec = JobSpec(entry_script="forever.py", snapshot_root=project)
    pipeline = backend.submit(spec)
    two_steps = PipelineSpec(
        "forever", [PipelineStep("first", spec), PipelineStep("second", spec, after=["first"])]
    )
    plan = PipelinePlan(
        pipeline=two_steps,
        steps=(
            PlannedStep("first", spec, (), "0", "d"),
            PlannedStep("second", spec, ("first",), "1", "d"),
        ),
    )
    plan_file = tmp_path / PIPELINE_PLAN_FILE
    plan_file.write_text(plan.to_json(), encoding="utf-8")
    for folder in ("0", "1"):  # as submit_pipeline puts them there
        shutil.copytree(project, tmp_path / STEP_SNAPSHOTS_FOLDER / folder)
    monkeypatch.setenv(job_variables.WORKSPACE, str(backend.root))
    monkeypatch.setenv(job_variables.RUN_ID, pipeline.run_id)
    monkeypatch.setattr(pipeline_driver, "DEADLINE_SECONDS", 2.0)
    monkeypatch.setattr(pipeline_driver.signal, "signal", lambda *args: None)  # not the test's
    exit_codes: list[int] = []
    driver = threading.Thread(
        target=lambda: exit_codes.append(pipeline_driver.main(str(plan_file))), daemon=True
    )
    try:
        driver.start()
        driver.join(timeout=60)
        assert exit_codes == [1]
        steps = backend.child_runs(pipeline)
        assert len(steps) == 1  # the second step waits for the first: it never started
        assert backend.wait(steps[0], timeout=60).status is RunStatus.CANCELED
    finally:
        backend.cancel(pipeline)


# ---- step reuse -----------------------------------------------------------------------------


def separate_chain(
    project: Path,
    *,
    preprocess: str = PREPROCESS,
    train: str = TRAIN,
    preprocess_args: tuple[str, ...] = (),
    allow_reuse: tuple[bool, bool] = (True, True),
    names: tuple[str, str] = ("preprocess", "train"),
    pipeline: str = "preprocess-then-train",
) -> PipelineSpec:
    """`chain`, each step with a snapshot folder of its own: a change to one leaves the other's
    snapshot as it was."""
    write_script(project / "prep", "preprocess.py", preprocess)
    write_script(project / "fit", "train.py", train)
    prepare = JobSpec(
        entry_script=project / "prep" / "preprocess.py", snapshot_root=project / "prep",
        input_datasets=["raw"], output_datasets=["features"], args=list(preprocess_args),
    )  # fmt: skip
    fit = JobSpec(
        entry_script=project / "fit" / "train.py", snapshot_root=project / "fit",
        input_datasets=["features"],
    )  # fmt: skip
    return PipelineSpec(
        pipeline,
        [
            PipelineStep(names[0], prepare, allow_reuse=allow_reuse[0]),
            PipelineStep(names[1], fit, allow_reuse=allow_reuse[1]),
        ],
        existing_datasets=["raw"],
    )


def run_pipeline(backend: LocalBackend, spec: PipelineSpec) -> tuple[RunRef, list[StepRun]]:
    """Submits the pipeline and waits for it to complete; returns it and its steps."""
    pipeline = backend.submit_pipeline(spec)
    assert backend.wait(pipeline, timeout=120).succeeded, log_of(backend, pipeline)
    return pipeline, backend.pipeline_steps(pipeline)


def ran(steps: list[StepRun]) -> list[str]:
    """The steps that ran (rather than took an earlier run's outputs)."""
    return [s.step for s in steps if s.run is not None and s.reused_from is None]


def test_an_unchanged_pipeline_submitted_again_reuses_every_step(
    backend: LocalBackend, project: Path
) -> None:
    put_dataset(backend, "raw", "abc")
    spec = separate_chain(project)
    _, first_steps = run_pipeline(backend, spec)

    again, steps = run_pipeline(backend, spec)

    assert [s.step for s in steps] == ["preprocess", "train"]
    assert [s.reused_from for s in steps] == [s.run for s in first_steps]
    assert ran(first_steps) == ["preprocess", "train"] and ran(steps) == []
    prep, train = (s.run for s in steps)
    assert prep is not None and train is not None
    assert backend.child_runs(again) == [prep, train]
    assert [v["version"] for v in backend.dataset_versions("features")] == [1]  # none new
    assert backend.run_outputs(prep) == backend.run_outputs(first_steps[0].run)  # type: ignore[arg-type]
    assert backend.run_inputs(train) == backend.run_outputs(prep)
    # A stand-in ran nothing: no process, Completed at once, saying whose outputs it has.
    for step, earlier in zip(steps, first_steps, strict=True):
        assert step.run is not None and earlier.run is not None
        state = backend.get_state(step.run)
        assert state.status is RunStatus.COMPLETED and state.exit_code is None
        assert backend.attempts(step.run)[0]["status"] == "Completed"
        assert backend.run_tags(step.run)["reused_from"] == earlier.run.recovery_id
        assert earlier.run.run_id in log_of(backend, step.run)
        assert backend.get_metrics(step.run) == []
    assert "step train reused run" in log_of(backend, again)


def _changed_arguments(backend: LocalBackend, project: Path) -> PipelineSpec:
    return separate_chain(project, preprocess_args=("--lower",))


def _changed_snapshot(backend: LocalBackend, project: Path) -> PipelineSpec:
    spec = separate_chain(project)
    write_script(project / "prep", "helper.py", "SCALE = 2\n")  # not the script: its folder
    return spec


def _new_input_version(backend: LocalBackend, project: Path) -> PipelineSpec:
    put_dataset(backend, "raw", "xyz")
    return separate_chain(project)


def _changed_train_script(backend: LocalBackend, project: Path) -> PipelineSpec:
    return separate_chain(project, train=TRAIN + "    print('a new line')\n")


def _changes_outside_the_identity(backend: LocalBackend, project: Path) -> PipelineSpec:
    # Another pipeline, in another experiment, its steps under other names, with other
    # display names and tags, runs the same jobs in a copy of the project elsewhere.
    copy = project.parent / "elsewhere"
    spec = separate_chain(copy, names=("prepare", "fit"), pipeline="another")
    return PipelineSpec(
        spec.name,
        [
            PipelineStep(
                s.name,
                dataclasses.replace(s.job, display_name=f"the {s.name}", tags={"who": "me"}),
            )
            for s in spec.steps
        ],
        existing_datasets=["raw"],
        experiment="elsewhere",
    )


@pytest.mark.parametrize(
    ("change", "runs_again"),
    [
        (_changed_arguments, ["preprocess", "train"]),
        (_changed_snapshot, ["preprocess", "train"]),
        (_new_input_version, ["preprocess", "train"]),
        (_changed_train_script, ["train"]),
        (_changes_outside_the_identity, []),
    ],
)
def test_each_part_of_a_steps_identity_decides_its_reuse(
    backend: LocalBackend,
    project: Path,
    change: Callable[[LocalBackend, Path], PipelineSpec],
    runs_again: list[str],
) -> None:
    put_dataset(backend, "raw", "abc")
    _, first = run_pipeline(backend, separate_chain(project))

    _, steps = run_pipeline(backend, change(backend, project))

    assert [s.run is not None for s in steps] == [True, True]
    positions = {"preprocess": 0, "train": 1}
    assert [s.step for s in steps if s.reused_from is None] == [
        steps[positions[name]].step for name in runs_again
    ]
    for step, earlier in zip(steps, first, strict=True):
        assert step.reused_from in (None, earlier.run)
    made = 1 + ("preprocess" in runs_again)
    assert [v["version"] for v in backend.dataset_versions("features")] == list(range(1, made + 1))
    prep, train = (s.run for s in steps)
    assert prep is not None and train is not None
    assert backend.run_inputs(train) == backend.run_outputs(prep)


@pytest.mark.parametrize(
    ("allow_reuse", "runs_again"),
    [((False, True), ["preprocess", "train"]), ((True, False), ["train"])],
)
def test_a_step_that_does_not_allow_reuse_always_runs(
    backend: LocalBackend,
    project: Path,
    allow_reuse: tuple[bool, bool],
    runs_again: list[str],
) -> None:
    put_dataset(backend, "raw", "abc")
    spec = separate_chain(project, allow_reuse=allow_reuse)
    run_pipeline(backend, spec)

    _, steps = run_pipeline(backend, spec)

    assert ran(steps) == runs_again
    prep, train = (s.run for s in steps)
    assert prep is not None and train is not None
    assert backend.run_inputs(train) == backend.run_outputs(prep)
    # A preprocess that ran again made version 2; train, which read version 1 again, ran
    # again all the same, and made nothing.
    made = len(backend.dataset_versions("features"))
    assert made == (2 if "preprocess" in runs_again else 1)


def _remove_files(backend: LocalBackend, written: ResolvedDataset) -> None:
    backend.datastore(written.datastore).delete(f"{written.path}/")


def _remove_registration(backend: LocalBackend, written: ResolvedDataset) -> None:
    with backend.registry.write() as db:
        db.execute(
            "DELETE FROM datasets WHERE name = ? AND version = ?", (written.name, written.version)
        )


def _change_a_file(backend: LocalBackend, written: ResolvedDataset) -> None:
    changed = backend.root.parent / "changed"
    changed.mkdir()
    (changed / "a.txt").write_text("ABD")  # the same size, other bytes
    backend.datastore(written.datastore).upload_folder(changed, written.path, overwrite=True)


def _add_a_file(backend: LocalBackend, written: ResolvedDataset) -> None:
    added = backend.root.parent / "added"
    added.mkdir()
    (added / "b.txt").write_text("more")
    backend.datastore(written.datastore).upload_folder(added, written.path)


@pytest.mark.parametrize(
    "remove", [_remove_files, _remove_registration, _change_a_file, _add_a_file]
)
def test_a_step_whose_earlier_output_version_was_removed_or_damaged_runs_again(
    backend: LocalBackend, project: Path, remove: Callable[[LocalBackend, ResolvedDataset], None]
) -> None:
    put_dataset(backend, "raw", "abc")
    spec = separate_chain(project)
    _, first = run_pipeline(backend, spec)
    assert first[0].run is not None
    [written] = backend.run_outputs(first[0].run)
    remove(backend, written)

    _, steps = run_pipeline(backend, spec)

    assert ran(steps) == ["preprocess", "train"]  # train reads the new version
    prep, train = (s.run for s in steps)
    assert prep is not None and train is not None
    [rewritten] = backend.run_outputs(prep)
    assert rewritten.path != written.path and backend.run_inputs(train) == [rewritten]
    assert "train read ABC" in log_of(backend, train)


def test_the_newest_earlier_run_still_whole_stands_in(backend: LocalBackend, project: Path) -> None:
    put_dataset(backend, "raw", "abc")
    runs_every_time = separate_chain(project, allow_reuse=(False, False))
    _, oldest = run_pipeline(backend, runs_every_time)
    _, newer = run_pipeline(backend, runs_every_time)
    _, newest = run_pipeline(backend, runs_every_time)
    assert newest[0].run is not None
    [gone] = backend.run_outputs(newest[0].run)
    _remove_files(backend, gone)

    _, steps = run_pipeline(backend, separate_chain(project))

    assert [s.reused_from for s in steps] == [newer[0].run, newer[1].run]
    assert oldest[0].run not in [s.reused_from for s in steps]
    assert len(backend.dataset_versions("features")) == 3


FLAKY_TRAIN = """\
    import pathlib, sys, time
    from himl_tasks.runtime import get_run_info
    print("train read", (get_run_info().input_datasets[0] / "a.txt").read_text(), flush=True)
    flag = pathlib.Path({flag!r})
    if flag.read_text() == "fail":
        sys.exit(1)
    if flag.read_text() == "hang":
        time.sleep(60)
"""


@pytest.mark.parametrize("outcome", ["fail", "hang"])
def test_a_step_whose_earlier_run_failed_or_was_canceled_runs_again(
    backend: LocalBackend, project: Path, tmp_path: Path, outcome: str
) -> None:
    # The step reads a file outside its snapshot: its identity is the same each time.
    flag = tmp_path / "flag"
    flag.write_text(outcome)
    put_dataset(backend, "raw", "abc")
    spec = separate_chain(project, train=FLAKY_TRAIN.format(flag=str(flag)))
    pipeline = backend.submit_pipeline(spec)
    if outcome == "hang":
        deadline = time.monotonic() + 60
        while "train read" not in log_of(
            backend, steps_of(backend, pipeline).get("train", pipeline)
        ):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        backend.cancel(pipeline)
    assert backend.wait(pipeline, timeout=120).status in (RunStatus.FAILED, RunStatus.CANCELED)
    [_, stopped] = backend.pipeline_steps(pipeline)
    assert stopped.run is not None and not backend.get_state(stopped.run).succeeded
    flag.write_text("pass")

    _, steps = run_pipeline(backend, spec)

    assert ran(steps) == ["train"]  # preprocess completed the first time: it is reused


def test_pipelines_racing_each_read_a_consistent_chain(
    backend: LocalBackend, project: Path
) -> None:
    put_dataset(backend, "raw", "abc")
    slow = PREPROCESS + "    import time\n    time.sleep(1.5)\n"
    spec = separate_chain(project, preprocess=slow)

    racing = [backend.submit_pipeline(spec), backend.submit_pipeline(spec)]
    assert all(backend.wait(p, timeout=120).succeeded for p in racing)
    later, steps = run_pipeline(backend, spec)

    # Neither saw the other's step complete, so both ran it; each train read what its own
    # preprocess wrote, and the later pipeline reused one whole chain, never half of each.
    for pipeline in [*racing, later]:
        prep, train = backend.pipeline_steps(pipeline)
        assert prep.run is not None and train.run is not None
        assert backend.run_inputs(train.run) == backend.run_outputs(prep.run)
    assert [ran(backend.pipeline_steps(p)) for p in racing] == [["preprocess", "train"]] * 2
    assert ran(steps) == []
    prep, train = steps
    assert prep.reused_from is not None and train.reused_from is not None
    assert backend.run_inputs(train.reused_from) == backend.run_outputs(prep.reused_from)
    assert len(backend.dataset_versions("features")) == 2


def test_an_earlier_run_whose_version_goes_while_it_is_taken_does_not_stand_in(
    backend: LocalBackend, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The registry is read again in the transaction that records the stand-in: a version
    # removed after the checks (by hand, by another process) leaves the step to run.
    put_dataset(backend, "raw", "abc")
    first, _ = run_pipeline(backend, separate_chain(project))
    plan = PipelinePlan.from_json(
        (backend._row(first).run_dir / "snapshot" / PIPELINE_PLAN_FILE).read_text()
    )
    step = plan.steps[0]
    checked = backend_module.outputs_intact
    approved: list[bool] = []

    def removed_right_after_the_check(
        outputs: list[tuple[ResolvedDataset, str | None]], *args: Any
    ) -> bool:
        whole = checked(outputs, *args)
        approved.append(whole)
        for written, _ in outputs:
            _remove_registration(backend, written)
        return whole

    monkeypatch.setattr(backend_module, "outputs_intact", removed_right_after_the_check)
    write_script(project, "wait.py", "import time\ntime.sleep(30)\n")
    parent = backend.submit(JobSpec(entry_script="wait.py", snapshot_root=project))
    try:
        ref = backend.submit_step(step, step.spec, pipeline_run_id=parent.run_id)
        assert approved == [True]  # the earlier run passed the checks, then lost its version
        assert backend.run_tags(ref).get("reused_from") is None
        assert backend._row(ref).reused_from is None
        assert backend.wait(ref, timeout=120).succeeded
        assert backend.submit_step(step, step.spec, pipeline_run_id=parent.run_id) == ref
    finally:
        backend.cancel(parent)


def test_run_inputs_are_the_versions_any_run_read(backend: LocalBackend, project: Path) -> None:
    put_dataset(backend, "raw", "abc")
    put_dataset(backend, "raw", "def")
    write_script(project, "read.py", TRAIN.replace("features", "raw"))
    reader = JobSpec(
        entry_script="read.py",
        snapshot_root=project,
        input_datasets=[DatasetConfig("raw", version=1)],
    )
    alone = JobSpec(entry_script="read.py", snapshot_root=project)

    read, nothing = backend.submit(reader), backend.submit(alone)

    [first] = [v for v in backend.dataset_versions("raw") if v["version"] == 1]
    assert backend.run_inputs(read) == [
        ResolvedDataset("raw", 1, first["datastore"], first["path"], None)
    ]
    assert backend.run_inputs(nothing) == []
    for ref in (read, nothing):
        backend.wait(ref, timeout=120)
        with pytest.raises(InvalidInputError, match="not a pipeline run"):
            backend.pipeline_steps(ref)
        with pytest.raises(InvalidInputError, match="not a pipeline run"):
            backend.submitted_pipeline(ref)


def test_pipelines_submitted_together_never_hold_the_slots_their_steps_need(
    backend: LocalBackend, project: Path
) -> None:
    # As many pipelines as the default cluster has slots: drivers holding those slots would
    # leave their steps queued for ever.
    slots = default_cluster_limit()
    if slots > 4:
        pytest.skip(f"would run {slots} pipelines at once on this machine")
    write_script(project, "step.py", "import time\ntime.sleep(0.5)\n")
    spec = PipelineSpec(
        "one_step",
        [PipelineStep("only", JobSpec(entry_script="step.py", snapshot_root=project),
                      allow_reuse=False)],
    )  # fmt: skip

    pipelines = [backend.submit_pipeline(spec) for _ in range(slots)]

    try:
        assert all(backend.wait(p, timeout=60).succeeded for p in pipelines)
    finally:
        for pipeline in pipelines:
            backend.cancel(pipeline)
    with pytest.raises(InvalidInputError, match="local-drivers"):  # the drivers' own
        backend.create_compute_cluster("local-drivers", max_concurrent_runs=1)
