"""Pipelines with Prefect as conductor, without Prefect: identity, submitting once, resuming.

Real local pipelines (a driver run, steps as child runs) of the pipeline contract's chain:
`prep` reads the existing dataset `raw` and writes `features`; `train` reads `features`.
A lost training step is the local cluster's injectable preemption.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest

from himl_tasks.backends.local.backend import LocalBackend
from himl_tasks.backends.local.clusters import Preemption
from himl_tasks.errors import InvalidInputError, JobFailedError
from himl_tasks.job_spec import JobSpec, Priority
from himl_tasks.jobs.identity import pipeline_submission_identity
from himl_tasks.jobs.pipeline_submission import (
    PlannedPipeline,
    pipeline_to_resubmit,
    plan_pipeline,
    submit_pipeline_once,
)
from himl_tasks.jobs.pipeline_to_completion import run_pipeline_to_completion
from himl_tasks.jobs.run_to_completion import ResubmitPolicy
from himl_tasks.pipelines import PipelineSpec, PipelineStep
from himl_tasks.runs import FailureKind, RunRef, RunState, RunStatus
from himl_tasks.testing.backend_contract import DEADLINE_SECONDS, Job
from himl_tasks.testing.pipeline_contract import PREP, chain, make_raw
from tests.backends.conftest import write_script
from tests.backends.test_backend_contract import LocalHarness, local_harness

# A training job long enough for the cluster to lose it part-way.
SLOW_TRAIN = """
    import time
    print("training", flush=True)
    time.sleep(1.5)
    print("trained", flush=True)
"""


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[LocalHarness]:
    yield from local_harness(tmp_path)


def identity(backend: LocalBackend, pipeline: PipelineSpec) -> tuple[PlannedPipeline, str]:
    planned = plan_pipeline(backend, pipeline)
    return planned, pipeline_submission_identity(planned.pipeline, planned.plans, workspace="w")


def lost_once_chain(harness: LocalHarness, tmp_path: Path) -> PipelineSpec:
    """The chain whose training step the `spot` cluster preempts once, 0.5 s in."""
    harness.backend.create_compute_cluster(
        "spot", preemption=Preemption(after_seconds=0.5, max_preemptions=1)
    )
    script = write_script(tmp_path / "slow", "train.py", SLOW_TRAIN)
    train = JobSpec(
        entry_script=script.name,
        snapshot_root=script.parent,
        input_datasets=["features"],
        compute="spot",
        priority=Priority.LOW_PRIORITY,
    )
    make_raw(harness)
    return chain(harness, train=PipelineStep("train", train))


def test_the_identity_is_every_step_s_job_and_the_graph_not_the_display_name(
    harness: LocalHarness,
) -> None:
    backend = harness.backend
    make_raw(harness)
    pipeline = chain(harness)
    planned, first = identity(backend, pipeline)

    assert identity(backend, pipeline)[1] == first
    renamed = dataclasses.replace(pipeline, display_name="shown otherwise")
    assert identity(backend, renamed)[1] == first
    assert first.startswith("himl-pipeline-")
    # The existing dataset is pinned to the version the identity names.
    assert planned.pipeline.step("prep").job.input_datasets[0].version == 1
    assert planned.plans["prep"].inputs[0].version == 1
    another_train = chain(harness, prep=pipeline.step("prep"))  # a new train script
    assert identity(backend, another_train)[1] != first
    no_reuse = chain(
        harness,
        prep=pipeline.step("prep"),
        train=PipelineStep("train", pipeline.step("train").job, allow_reuse=False),
    )
    assert identity(backend, no_reuse)[1] != first
    make_raw(harness)  # raw version 2: the steps would read other data
    assert identity(backend, pipeline)[1] != first


def test_a_pipeline_is_submitted_once_under_its_identity(harness: LocalHarness) -> None:
    backend = harness.backend
    make_raw(harness)
    planned, sid = identity(backend, chain(harness))

    ref, found = submit_pipeline_once(backend, planned.pipeline, sid)
    again, found_again = submit_pipeline_once(backend, planned.pipeline, sid)

    assert (found, found_again) == (False, True)
    assert again == ref
    assert backend.find_submission(sid) == ref
    assert harness.settle(ref).succeeded


def test_a_lost_step_is_resumed_by_submitting_the_pipeline_again(
    harness: LocalHarness, tmp_path: Path
) -> None:
    backend = harness.backend
    planned, sid = identity(backend, lost_once_chain(harness, tmp_path))

    result = run_pipeline_to_completion(
        backend,
        planned.pipeline,
        submit=lambda pipeline: submit_pipeline_once(backend, pipeline, sid)[0],
        watch=lambda ref: backend.wait(ref, timeout=DEADLINE_SECONDS),
        policy=ResubmitPolicy(delay_seconds=0),
    )

    assert result.state.succeeded
    first, second = result.attempts
    assert backend.find_submission(sid) == backend.get_run_ref(first)
    assert backend.find_submission(f"{sid}.2") == result.run == backend.get_run_ref(second)
    lost, resumed = result.steps["train"].attempts
    assert backend.get_state(backend.get_run_ref(lost)).failure_kind is FailureKind.PREEMPTED
    resumed_ref = backend.get_run_ref(resumed)
    assert result.steps["train"].run == resumed_ref
    assert backend.submitted_spec(resumed_ref).resume_from == lost
    assert backend.submitted_spec(backend.get_run_ref(lost)).resume_from == ""
    # The training step read the version its preprocessing step wrote, in the run that completed.
    assert result.steps["train"].inputs == result.steps["prep"].outputs == {"features": 1}
    # The completed preprocessing step was reused by the backend, not run again.
    (prep_run,) = result.steps["prep"].attempts
    assert result.steps["prep"].reused_from == backend.get_run_ref(prep_run)
    assert result.steps["prep"].source == result.steps["prep"].reused_from
    # A flow re-run after a crash walks the same chain to the completed pipeline run.
    assert submit_pipeline_once(backend, planned.pipeline, sid) == (result.run, True)


def test_a_step_s_user_error_is_not_retried_and_names_the_step_s_run(
    harness: LocalHarness,
) -> None:
    backend = harness.backend
    make_raw(harness)
    planned, sid = identity(backend, chain(harness, train=Job(exit_code=3)))
    submitted = []

    def submit(pipeline: PipelineSpec) -> RunRef:
        ref = submit_pipeline_once(backend, pipeline, sid)[0]
        submitted.append(ref)
        return ref

    with pytest.raises(JobFailedError) as failed:
        run_pipeline_to_completion(
            backend,
            planned.pipeline,
            submit=submit,
            watch=lambda ref: backend.wait(ref, timeout=DEADLINE_SECONDS),
            policy=ResubmitPolicy(delay_seconds=0),
        )

    (pipeline_run,) = submitted
    train = {s.step: s for s in backend.pipeline_steps(pipeline_run)}["train"].run
    state = failed.value.state
    assert isinstance(state, RunState)
    assert state.ref == train
    assert state.failure_kind is FailureKind.USER_ERROR


def test_resubmit_pipeline_resumes_each_step_that_did_not_complete(
    harness: LocalHarness, tmp_path: Path
) -> None:
    backend = harness.backend
    pipeline = lost_once_chain(harness, tmp_path)
    ref = backend.submit_pipeline(pipeline)
    assert harness.settle(ref).status is RunStatus.FAILED
    lost = {s.step: s.run for s in backend.pipeline_steps(ref)}["train"]
    assert lost is not None

    new = backend.submit_pipeline(pipeline_to_resubmit(backend, ref))

    assert harness.settle(new).succeeded
    steps = {s.step: s for s in backend.pipeline_steps(new)}
    train = steps["train"].run
    assert train is not None and train != lost
    assert backend.submitted_spec(train).resume_from == lost.recovery_id
    assert backend.submitted_pipeline(new).step("train").job.resume_from == lost.recovery_id
    assert backend.submitted_pipeline(new).step("prep").job.resume_from == ""


def test_resubmit_pipeline_refuses_a_pipeline_run_still_going(harness: LocalHarness) -> None:
    backend = harness.backend
    make_raw(harness)
    going = dataclasses.replace(PREP, keeps_running=True)
    ref = backend.submit_pipeline(chain(harness, prep=going))

    with pytest.raises(InvalidInputError, match="still .*cancel it first"):
        backend.submit_pipeline(pipeline_to_resubmit(backend, ref))
    backend.cancel(ref)


def test_a_step_lost_past_the_retries_fails_with_the_lost_step_s_state(
    harness: LocalHarness, tmp_path: Path
) -> None:
    backend = harness.backend
    planned, sid = identity(backend, lost_once_chain(harness, tmp_path))

    with pytest.raises(JobFailedError, match=r"ended Failed \(preempted\)") as failed:
        run_pipeline_to_completion(
            backend,
            planned.pipeline,
            submit=lambda pipeline: submit_pipeline_once(backend, pipeline, sid)[0],
            watch=lambda ref: backend.wait(ref, timeout=DEADLINE_SECONDS),
            policy=ResubmitPolicy(max_retries=0),
        )

    pipeline_run = backend.find_submission(sid)
    assert pipeline_run is not None and backend.find_submission(f"{sid}.2") is None
    train = {s.step: s.run for s in backend.pipeline_steps(pipeline_run)}["train"]
    assert getattr(failed.value.state, "ref", None) == train
