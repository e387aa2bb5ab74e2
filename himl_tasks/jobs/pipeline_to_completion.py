"""Running a pipeline to the end: watching it, and resubmitting it when the platform lost a step.

A pipeline run that ends without completing because a step's run was lost to the platform
(preempted, infrastructure) is submitted again with that step resuming from its lost run,
under the same `ResubmitPolicy` as a job (`run_to_completion`'s loop); a step that failed for
its code, or a canceled pipeline, is never retried. The steps that completed are reused by
the backend when it can (their outputs taken, not made again).

Nothing here imports Prefect; `himl_tasks.prefect.pipeline_tasks` wraps it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from himl_tasks.backends.base import Backend
from himl_tasks.jobs.pipeline_submission import failed_step_error, lost_steps, resuming_steps
from himl_tasks.jobs.run_to_completion import ResubmitPolicy, resubmit_until_done
from himl_tasks.pipeline_runs import StepRun
from himl_tasks.pipelines import PipelineSpec
from himl_tasks.runs import Metric, RunRef, RunState

logger = logging.getLogger(__name__)


@dataclass
class StepResult:
    """What one step of a completed pipeline produced.

    Attributes:
        step: The step's name.
        run: The step's run in the pipeline run that completed.
        reused_from: The earlier run whose outputs the step took instead of running, if any.
        attempts: The recovery ids of the step's runs that ran, over every submission of the
            pipeline, first to last (a lost run, then the run that resumed it).
        inputs: The dataset versions the step read, {name: version}.
        outputs: The dataset versions the step wrote (or took from the run it reused).
        metrics: The last value of each metric the step's run logged (the reused run's).
        metric_history: Every metric value of every run in `attempts`, in order.
    """

    step: str
    run: RunRef | None
    reused_from: RunRef | None = None
    attempts: list[str] = field(default_factory=list)
    inputs: dict[str, int] = field(default_factory=dict)
    outputs: dict[str, int] = field(default_factory=dict)
    metrics: dict[str, float | str] = field(default_factory=dict)
    metric_history: list[Metric] = field(default_factory=list)

    @property
    def source(self) -> RunRef | None:
        """The run that made the step's outputs: the reused run, else the step's own."""
        return self.reused_from or self.run


@dataclass
class PipelineResult:
    """What running a pipeline produced.

    Attributes:
        run: The pipeline run that completed.
        state: Its final state.
        attempts: Every submission's pipeline run, as recovery ids, first to last.
        steps: Each step's result, in the pipeline's order, by name.
        reused: True when nothing was submitted: an identical pipeline's run was found.
    """

    run: RunRef
    state: RunState
    attempts: list[str] = field(default_factory=list)
    steps: dict[str, StepResult] = field(default_factory=dict)
    reused: bool = False


def run_pipeline_to_completion(
    backend: Backend,
    pipeline: PipelineSpec,
    *,
    submit: Callable[[PipelineSpec], RunRef],
    watch: Callable[[RunRef], RunState],
    policy: ResubmitPolicy | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> PipelineResult:
    """Submits a pipeline and watches it; resubmits it, lost steps resuming, when one was lost.

    Args:
        backend: Where the pipeline runs.
        pipeline: The pipeline (as `plan_pipeline` pinned it, for one identity throughout).
        submit: Submits the pipeline, returning its run (it may find an earlier identical run).
        watch: Watches a pipeline run to its final state.
        policy: When to resubmit (default: `ResubmitPolicy()`).
        sleep: How to pause between attempts.

    Raises:
        JobFailedError: For a step's user error or cancellation (the step's state), a
            canceled pipeline, or a lost step past the retries.
    """

    def resumed(job: PipelineSpec, ref: RunRef, state: RunState) -> PipelineSpec | None:
        lost = lost_steps(backend, ref, state)
        if lost is None:
            return None
        for step, run in lost.items():
            logger.warning(
                "pipeline run %s: step %s's run %s was lost to the platform; the step resumes "
                "from its latest recovery checkpoint when the pipeline is submitted again",
                ref, step, run,
            )  # fmt: skip
        return resuming_steps(job, lost)  # earlier resumptions kept: those steps stay reusable

    attempts = resubmit_until_done(
        pipeline,
        submit=submit,
        watch=watch,
        resumed=resumed,
        policy=policy or ResubmitPolicy(),
        sleep=sleep,
        failure=lambda ref, state: failed_step_error(backend, ref, state),
    )
    ref, state = attempts[-1]
    every = [backend.pipeline_steps(earlier) for earlier, _ in attempts]
    return PipelineResult(
        run=ref,
        state=state,
        attempts=[earlier.recovery_id for earlier, _ in attempts],
        steps={step.step: _step_result(backend, step, every) for step in every[-1]},
    )


def _step_result(backend: Backend, final: StepRun, every: list[list[StepRun]]) -> StepResult:
    """A step's result: its final run's inputs and outputs, its runs' metrics over attempts."""
    ran: list[RunRef] = []
    for steps in every:
        for step in steps:
            same = step.step == final.step and step.run is not None and not step.reused
            if same and step.run is not None and step.run not in ran:
                ran.append(step.run)
    history: list[Metric] = []
    last: list[Metric] = []
    for ref in ran:
        last = backend.get_metrics(ref)
        history += last
    result = StepResult(
        step=final.step,
        run=final.run,
        reused_from=final.reused_from,
        attempts=[ref.recovery_id for ref in ran],
        metric_history=history,
    )
    source = result.source
    if source is not None:
        if final.reused_from is not None:
            last = backend.get_metrics(final.reused_from)
        result.metrics = {metric.name: metric.value for metric in last}
        result.inputs = {d.name: d.version for d in backend.run_inputs(source)}
        result.outputs = {d.name: d.version for d in backend.run_outputs(source)}
    return result
