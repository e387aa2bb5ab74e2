"""Pipelines on the local backend: a driver run whose children are the steps, real subprocesses."""

from __future__ import annotations

import json
import shutil
import threading
import time
from pathlib import Path

import pytest

from himl_tasks import job_variables
from himl_tasks.backends.base import Backend
from himl_tasks.backends.local import pipeline_driver
from himl_tasks.backends.local.backend import LocalBackend
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


@pytest.mark.parametrize("backend_fixture", ["aml", "aml_v2"])
def test_a_backend_without_pipelines_refuses_before_anything_is_done(
    backend_fixture: str, request: pytest.FixtureRequest, project: Path
) -> None:
    remote: Backend = request.getfixturevalue(backend_fixture)
    with pytest.raises(NotSupportedError, match="does not run pipelines yet"):
        remote.submit_pipeline(chain(project))
    with pytest.raises(NotImplementedError):  # what a Python programmer would catch
        remote.submit_pipeline(chain(project), submission_id="x")


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
