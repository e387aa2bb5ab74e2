"""Submitting a pipeline once, and submitting it again with its lost steps resumed.

A pipeline is planned once (`plan_pipeline`): each step's job is checked and its snapshot
selected, and the datasets the pipeline reads from the workspace are resolved to versions,
which the pipeline submitted then reads. Its submission id comes from its identity (every
step's job identity, `pipeline_submission_identity`), in the same chain of ids a job's
submissions use (`submit_once`): a flow re-run after a crash finds the pipeline run it
made; a pipeline run that ended without completing is followed by the next link.

A step whose run the platform lost (preempted, infrastructure) is submitted again as single
jobs are: its job resumes from the lost run's recovery checkpoint (`JobSpec.resume_from`).
The steps that completed are the backend's to reuse (a step whose code, settings and input
versions did not change takes its earlier run's outputs); nothing here depends on it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

from himl_tasks.backends.base import Backend
from himl_tasks.errors import InvalidInputError, JobFailedError
from himl_tasks.jobs.submit_once import walk_chain
from himl_tasks.pipelines import PipelineSpec
from himl_tasks.run_plan import RunPlan
from himl_tasks.runs import RESUBMITTABLE, FailureKind, RunRef, RunState


@dataclass(frozen=True)
class PlannedPipeline:
    """A pipeline prepared once for one backend: what its identity and submissions read.

    Attributes:
        pipeline: The pipeline, each dataset it reads from the workspace pinned to the
            version resolved when it was planned (so every submission reads that version).
        plans: Each step's job as the backend prepared it (snapshot selected, the inputs
            read from the workspace resolved), by step name. A step's inputs that another
            step writes are not in its plan: they have no version before the pipeline runs.
    """

    pipeline: PipelineSpec
    plans: Mapping[str, RunPlan]


def plan_pipeline(backend: Backend, pipeline: PipelineSpec) -> PlannedPipeline:
    """Prepares a pipeline once: checks every step's job, selects its snapshot, pins inputs.

    Every step is checked before any dataset is resolved (resolving a dataset that is only a
    folder registers its version 1): a pipeline refused for one bad step leaves nothing
    behind.

    Raises:
        InvalidInputError: Not a `PipelineSpec`, or a step's job that cannot run here.
        HimlError: As `Backend.plan` raises it, for the step it names.
    """
    if not isinstance(pipeline, PipelineSpec):
        raise InvalidInputError(f"a pipeline is a PipelineSpec, not {pipeline!r}")
    read_from_workspace = {
        step.name: [
            config
            for config in step.job.input_datasets
            if pipeline.step_writing(config.name) is None
        ]
        for step in pipeline.steps
    }
    checked = backend.plan_steps(pipeline)
    resolved = backend.resolve_existing_inputs(pipeline)
    steps, plans = [], {}
    for step in pipeline.steps:
        job = dataclasses.replace(
            step.job,
            input_datasets=tuple(
                dataclasses.replace(config, version=resolved[config].version)
                if config in resolved
                else config
                for config in step.job.input_datasets
            ),
        )
        steps.append(dataclasses.replace(step, job=job))
        plan = checked[step.name]
        plans[step.name] = dataclasses.replace(
            plan,
            spec=dataclasses.replace(
                plan.spec,
                input_datasets=tuple(
                    dataclasses.replace(config, version=resolved[config].version)
                    for config in read_from_workspace[step.name]
                ),
            ),
            inputs=tuple(resolved[config] for config in read_from_workspace[step.name]),
        )
    pinned = dataclasses.replace(pipeline, steps=tuple(steps))
    return PlannedPipeline(pipeline=pinned, plans=plans)


def submit_pipeline_once(
    backend: Backend, pipeline: PipelineSpec, identity: str
) -> tuple[RunRef, bool]:
    """Returns the pipeline's run: the live or completed one of its identity, else a new one.

    The chain of the identity's submission ids is walked as `submit_once` walks a job's. A
    new submission after a pipeline run whose steps the platform lost resumes those steps
    from their lost runs, unless the pipeline already says where its steps resume from, as
    the flow that crashed would have done.

    Returns:
        The pipeline run, and whether it was found rather than submitted now.
    """
    sid, found, last_ended = walk_chain(backend, identity)
    if found is not None:
        return found, True
    already_resuming = any(step.job.resume_from for step in pipeline.steps)
    if last_ended is not None and not already_resuming:
        lost = lost_steps(backend, *last_ended)
        if lost:
            pipeline = resuming_steps(pipeline, lost)
    return backend.submit_pipeline(pipeline, submission_id=sid), False


def lost_steps(backend: Backend, ref: RunRef, state: RunState) -> dict[str, RunRef] | None:
    """The steps of an ended pipeline run that the platform lost, with their lost runs.

    Returns:
        {step name: its lost run} when submitting the pipeline again, with those steps
        resuming, may complete it: every step that ended without completing was lost to
        the platform (preempted, infrastructure), or the pipeline run itself was. None when
        it would not help: a step failed for its code or was canceled, or the pipeline run
        was canceled. A step canceled because the pipeline run itself was lost (its
        driver gone, its running steps canceled with it) was lost with it.
    """
    steps = backend.pipeline_steps(ref)
    pipeline_lost = state.failure_kind in RESUBMITTABLE
    lost: dict[str, RunRef] = {}
    for step in steps:
        if step.run is None:
            continue
        step_state = backend.get_state(step.run)
        if not _did_not_complete(step_state):
            continue
        stopped_with_it = pipeline_lost and step_state.failure_kind is FailureKind.CANCELED
        if step_state.failure_kind not in RESUBMITTABLE and not stopped_with_it:
            return None
        lost[step.step] = step.run
    if lost or pipeline_lost:
        return lost
    return None


def failed_step_error(backend: Backend, ref: RunRef, state: RunState) -> JobFailedError:
    """The error for a pipeline run that ended without completing: its first failed step's.

    A pipeline's own state says only that it failed; its step's says why (the user error,
    the cancellation). When no step run failed, the pipeline run's own state.
    """
    for step in backend.pipeline_steps(ref):
        if step.run is not None:
            step_state = backend.get_state(step.run)
            if _did_not_complete(step_state):
                return JobFailedError(step_state)
    return JobFailedError(state)


def resuming_steps(pipeline: PipelineSpec, lost: Mapping[str, RunRef]) -> PipelineSpec:
    """The same pipeline, each step in `lost` resuming from its lost run.

    Raises:
        InvalidInputError: If `lost` names a step the pipeline does not have.
    """
    for name in lost:
        pipeline.step(name)
    return dataclasses.replace(
        pipeline,
        steps=tuple(
            dataclasses.replace(step, job=step.job.resuming_from(lost[step.name].recovery_id))
            if step.name in lost
            else step
            for step in pipeline.steps
        ),
    )


def pipeline_to_resubmit(backend: Backend, ref: RunRef) -> PipelineSpec:
    """The pipeline an ended pipeline run was submitted with, its unfinished steps resuming.

    The pipeline is `Backend.submitted_pipeline`'s; a step whose run ended without completing
    (lost, failed or canceled) resumes from that run's recovery checkpoint, as `himl
    resubmit` resumes a job.

    Raises:
        InvalidInputError: The run is still going (cancel it first), or is not a pipeline run.
        RunNotFoundError: No such run.
        NotSupportedError: This backend does not run pipelines.
    """
    state = backend.get_state(ref)
    if not state.is_terminal:
        raise InvalidInputError(
            f"not resubmitting pipeline run {ref}: it is still {state.status.value} (cancel it "
            "first)"
        )
    pipeline = backend.submitted_pipeline(ref)
    ended = {
        step.step: step.run
        for step in backend.pipeline_steps(ref)
        if step.run is not None and _did_not_complete(backend.get_state(step.run))
    }
    return resuming_steps(pipeline, ended)


def _did_not_complete(state: RunState) -> bool:
    return state.is_terminal and not state.succeeded
