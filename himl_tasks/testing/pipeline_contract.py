"""The pipeline contract: promises every backend that runs pipelines keeps.

A module of a project's tests subclasses `PipelineContract` and provides the `harness`
fixture, the same `BackendHarness` the Backend contract uses: its `job_spec` turns a `Job`
into a step's job, and its `settle` lets a run (a pipeline run or a step's run) go on until
it ends. The tests read the pipeline through the public primitives only: `submit_pipeline`,
`pipeline_steps`, `submitted_pipeline`, `run_inputs`, `run_outputs`, `child_runs`,
`get_state`, `cancel`.

The pipelines here are the issue's chain: `prep` reads the existing dataset `raw` and writes
`features`; `train` reads `features`.
"""

from __future__ import annotations

import time
import uuid

import pytest

from himl_tasks.backends.base import Backend
from himl_tasks.datasets import DatasetConfig, ResolvedDataset
from himl_tasks.errors import DatasetNotFoundError
from himl_tasks.pipeline_runs import StepRun
from himl_tasks.pipelines import PipelineSpec, PipelineStep
from himl_tasks.runs import FailureKind, RunRef, RunStatus
from himl_tasks.testing.backend_contract import (
    DEADLINE_SECONDS,
    BackendHarness,
    Job,
    wait_for_status,
)

PREP = Job(log_lines=("preparing",), input_datasets=("raw",), output_datasets=("features",))
TRAIN = Job(log_lines=("training",), input_datasets=("features",))


def make_raw(harness: BackendHarness) -> ResolvedDataset:
    """Makes version 1 of the existing dataset `raw` (a run's output); returns it."""
    ref = harness.backend.submit(harness.job_spec(Job(output_datasets=("raw",))))
    assert harness.settle(ref).succeeded
    (raw,) = harness.backend.run_outputs(ref)
    return raw


def chain(
    harness: BackendHarness,
    prep: Job | PipelineStep = PREP,
    train: Job | PipelineStep = TRAIN,
) -> PipelineSpec:
    """The pipeline prep -> train; a `Job` becomes a new step, a `PipelineStep` is kept."""
    steps = [
        step if isinstance(step, PipelineStep) else PipelineStep(name, harness.job_spec(step))
        for name, step in (("prep", prep), ("train", train))
    ]
    return PipelineSpec("contract-chain", steps, existing_datasets=["raw"])


def steps_of(backend: Backend, ref: RunRef) -> dict[str, StepRun]:
    """The pipeline run's steps by name, checking they come in the pipeline's order."""
    steps = backend.pipeline_steps(ref)
    assert [s.step for s in steps] == ["prep", "train"]
    return {s.step: s for s in steps}


def run_to_the_end(harness: BackendHarness, pipeline: PipelineSpec) -> dict[str, StepRun]:
    """Submits the pipeline and lets it complete; returns its steps by name."""
    ref = harness.backend.submit_pipeline(pipeline)
    assert harness.settle(ref).succeeded
    return steps_of(harness.backend, ref)


def chain_run_once(
    harness: BackendHarness, prep: Job | PipelineStep = PREP
) -> tuple[PipelineSpec, dict[str, StepRun]]:
    """Makes `raw`, then runs the chain once; returns it and its steps by name."""
    make_raw(harness)
    pipeline = chain(harness, prep=prep)
    return pipeline, run_to_the_end(harness, pipeline)


def step_run(step: StepRun) -> RunRef:
    """The step's run, which it has."""
    assert step.run is not None, f"step {step.step} has no run"
    return step.run


def wait_for_step_run(harness: BackendHarness, ref: RunRef, step: str) -> RunRef:
    """Reads the pipeline run's steps until step `step` has a run, within the deadline."""
    deadline = time.monotonic() + DEADLINE_SECONDS
    while (found := {s.step: s for s in harness.backend.pipeline_steps(ref)}[step]).run is None:
        assert not harness.backend.get_state(ref).is_terminal, f"ended before {step} started"
        assert time.monotonic() < deadline, f"step {step} did not start in time"
        time.sleep(harness.poll_seconds)
    return step_run(found)


class PipelineContract:
    """The tests every backend that runs pipelines passes; a subclass provides `harness`."""

    @pytest.fixture
    def harness(self) -> BackendHarness:
        """A harness on a fresh workspace: override this fixture in the subclass."""
        raise NotImplementedError("a PipelineContract subclass provides the harness fixture")

    def test_steps_are_child_runs_in_the_pipelines_order(self, harness: BackendHarness) -> None:
        backend = harness.backend
        make_raw(harness)
        pipeline = chain(harness)

        ref = backend.submit_pipeline(pipeline)
        assert harness.settle(ref).succeeded

        steps = steps_of(backend, ref)
        runs = [step_run(steps["prep"]), step_run(steps["train"])]
        assert set(backend.child_runs(ref)) == set(runs) and ref not in runs
        for run in runs:
            assert harness.settle(run).succeeded
            assert backend.get_run_ref(run.recovery_id) == run
        assert not any(s.reused for s in steps.values())
        assert backend.submitted_pipeline(ref) == pipeline

    def test_a_steps_output_version_is_the_next_steps_input(self, harness: BackendHarness) -> None:
        backend = harness.backend
        raw = make_raw(harness)
        ref = backend.submit_pipeline(chain(harness))
        assert harness.settle(ref).succeeded

        steps = steps_of(backend, ref)
        prep, train = step_run(steps["prep"]), step_run(steps["train"])
        (features,) = backend.run_outputs(prep)
        assert (features.name, features.version) == ("features", 1)
        assert backend.run_inputs(prep) == [raw]  # the latest version of an existing dataset
        assert backend.run_inputs(train) == [features]  # the version prep wrote, exactly
        assert backend.resolve_dataset(DatasetConfig("features")) == features

    def test_a_failed_step_stops_its_dependants(self, harness: BackendHarness) -> None:
        backend = harness.backend
        make_raw(harness)
        failing = Job(exit_code=3, input_datasets=("raw",), output_datasets=("features",))
        ref = backend.submit_pipeline(chain(harness, prep=failing))

        state = harness.settle(ref)

        assert state.status is RunStatus.FAILED
        steps = steps_of(backend, ref)
        prep = harness.settle(step_run(steps["prep"]))
        assert prep.status is RunStatus.FAILED
        assert prep.failure_kind is FailureKind.USER_ERROR
        assert steps["train"].run is None  # never started, for good
        with pytest.raises(DatasetNotFoundError):
            backend.resolve_dataset(DatasetConfig("features"))

    def test_canceling_the_pipeline_cancels_its_running_step(self, harness: BackendHarness) -> None:
        backend = harness.backend
        make_raw(harness)
        running = Job(keeps_running=True, input_datasets=("raw",), output_datasets=("features",))
        ref = backend.submit_pipeline(chain(harness, prep=running))
        prep = wait_for_step_run(harness, ref, "prep")
        wait_for_status(harness, prep, RunStatus.RUNNING)

        backend.cancel(ref)

        assert harness.settle(ref).status is RunStatus.CANCELED
        assert harness.settle(prep).status is RunStatus.CANCELED
        assert steps_of(backend, ref)["train"].run is None
        assert backend.run_outputs(prep) == []

    def test_one_submission_id_makes_one_pipeline_run(self, harness: BackendHarness) -> None:
        backend = harness.backend
        make_raw(harness)
        pipeline = chain(harness)
        submission = f"pipeline-{uuid.uuid4().hex}"

        first = backend.submit_pipeline(pipeline, submission_id=submission)
        second = backend.submit_pipeline(pipeline, submission_id=submission)
        assert harness.settle(first).succeeded
        after_it_ended = backend.submit_pipeline(pipeline, submission_id=submission)

        assert first == second == after_it_ended == backend.find_submission(submission)
        assert backend.resolve_dataset(DatasetConfig("features")).version == 1  # ran once

    def test_an_unchanged_pipeline_submitted_again_reuses_every_step(
        self, harness: BackendHarness
    ) -> None:
        backend = harness.backend
        pipeline, before = chain_run_once(harness)

        again = backend.submit_pipeline(pipeline)
        assert harness.settle(again).succeeded

        after = steps_of(backend, again)
        for name in ("prep", "train"):
            earlier, reused = step_run(before[name]), step_run(after[name])
            assert after[name].reused_from == earlier
            assert reused != earlier and reused in backend.child_runs(again)
            assert harness.settle(reused).succeeded
            assert backend.run_outputs(reused) == backend.run_outputs(earlier)
        # Nothing was made again: the one version of `features` is the first run's.
        assert backend.resolve_dataset(DatasetConfig("features")).version == 1

    def test_a_changed_step_runs_again_after_its_reused_upstream(
        self, harness: BackendHarness
    ) -> None:
        backend = harness.backend
        pipeline, before = chain_run_once(harness)
        changed_train = Job(log_lines=("training, changed",), input_datasets=("features",))

        after = run_to_the_end(
            harness, chain(harness, prep=pipeline.step("prep"), train=changed_train)
        )

        assert after["prep"].reused_from == step_run(before["prep"])
        assert not after["train"].reused
        train = step_run(after["train"])
        assert harness.settle(train).succeeded
        assert backend.run_inputs(train) == backend.run_outputs(step_run(before["prep"]))

    def test_a_step_that_allows_no_reuse_runs_every_time(self, harness: BackendHarness) -> None:
        backend = harness.backend
        prep = PipelineStep("prep", harness.job_spec(PREP), allow_reuse=False)
        pipeline, _ = chain_run_once(harness, prep=prep)

        after = run_to_the_end(harness, pipeline)

        assert not after["prep"].reused
        (features,) = backend.run_outputs(step_run(after["prep"]))
        assert features.version == 2
        # train's input changed (version 2), so train ran again too.
        assert not after["train"].reused
        assert backend.run_inputs(step_run(after["train"])) == [features]

    def test_an_input_that_does_not_exist_is_refused_before_anything_runs(
        self, harness: BackendHarness
    ) -> None:
        backend = harness.backend

        with pytest.raises(DatasetNotFoundError, match="raw"):
            backend.submit_pipeline(chain(harness))  # no `raw` in the workspace

        assert backend.list_runs() == []
