"""Running a job to the end: watching it, and resubmitting it when the platform lost it.

A run that ends `preempted` or `infrastructure` is submitted again, resuming from its latest
recovery checkpoint (`JobSpec.resume_from`), up to `ResubmitPolicy.max_retries` times with
exponential backoff. A `user_error` is never retried: the same code would fail again. A run
that the platform restarts itself (AzureML's low-priority restart, the local backend's
`mode="restart"`) stays active, so watching simply goes on.

Nothing here imports Prefect; `himl_tasks.prefect.job_tasks` wraps it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from himl_tasks.backends.base import Backend
from himl_tasks.errors import HimlError, InvalidInputError, JobFailedError
from himl_tasks.job_spec import JobSpec
from himl_tasks.number_checks import is_seconds, is_whole_number
from himl_tasks.run_plan import RunPlan
from himl_tasks.runs import RESUBMITTABLE, Metric, RunRef, RunState

logger = logging.getLogger(__name__)

# A job is handed on as the spec it was given or the plan a backend prepared of it.
SpecOrPlan = TypeVar("SpecOrPlan", JobSpec, RunPlan)
# What the resubmission loop submits: a job, or a pipeline.
Submitted = TypeVar("Submitted")


@dataclass(frozen=True)
class ResubmitPolicy:
    """When and how a lost job is submitted again.

    Args:
        max_retries: Resubmissions after the first attempt (0: never).
        delay_seconds: The pause before the first resubmission; doubled for each next one.
        max_delay_seconds: The longest pause.
    """

    max_retries: int = 2
    delay_seconds: float = 10.0
    max_delay_seconds: float = 600.0

    def __post_init__(self) -> None:
        if not (is_whole_number(self.max_retries) and self.max_retries >= 0):
            raise InvalidInputError(
                f"max_retries must be a whole number of 0 or more, not {self.max_retries!r}"
            )
        for name in ("delay_seconds", "max_delay_seconds"):
            if not is_seconds(getattr(self, name), zero_ok=True):
                raise InvalidInputError(
                    f"{name} must be a finite number of 0 or more, not {getattr(self, name)!r}"
                )

    def delay(self, retry: int) -> float:
        """The pause before resubmission number `retry` (from 1)."""
        return float(min(self.max_delay_seconds, self.delay_seconds * 2 ** (retry - 1)))


@dataclass
class JobResult:
    """What running a job produced.

    Attributes:
        run: The run that completed.
        state: Its final state.
        attempts: Every submission's recovery id, first to last.
        outputs: Output dataset versions the run registered, {name: version}.
        metrics: The last value of each metric the completed run logged.
        metric_history: Every metric value of every submission, in order (a resubmitted
            job's earlier runs first).
        reused: True when no job was submitted: an identical job's run was found instead.
    """

    run: RunRef
    state: RunState
    attempts: list[str] = field(default_factory=list)
    outputs: dict[str, int] = field(default_factory=dict)
    metrics: dict[str, float | str] = field(default_factory=dict)
    metric_history: list[Metric] = field(default_factory=list)
    reused: bool = False


def run_to_completion(
    backend: Backend,
    job: SpecOrPlan,
    *,
    submit: Callable[[SpecOrPlan], RunRef],
    watch: Callable[[RunRef], RunState],
    policy: ResubmitPolicy = ResubmitPolicy(),
    sleep: Callable[[float], None] = time.sleep,
) -> JobResult:
    """Submits a job and watches it; resubmits it, resuming, when the platform lost it.

    Args:
        backend: Where the job runs.
        job: The job, as a spec or as the plan the backend prepared of it (then every
            submission, resubmissions included, reads that plan: nothing is resolved again).
        submit: Submits the job, returning its run (it may find an earlier identical run).
        watch: Watches a run to its final state.
        policy: When to resubmit.
        sleep: How to pause between attempts.

    Raises:
        JobFailedError: For a user error, a cancellation, or a lost job past the retries.
    """

    def resumed(job: SpecOrPlan, ref: RunRef, state: RunState) -> SpecOrPlan | None:
        if state.failure_kind not in RESUBMITTABLE:
            return None
        # A plan keeps its snapshot and input versions; a spec is planned again when submitted.
        return job.resuming_from(ref.recovery_id)

    attempts = resubmit_until_done(
        job, submit=submit, watch=watch, resumed=resumed, policy=policy, sleep=sleep
    )
    ref, state = attempts[-1]
    per_attempt = [backend.get_metrics(earlier) for earlier, _ in attempts]
    history = [metric for metrics in per_attempt for metric in metrics]
    final = per_attempt[-1]
    return JobResult(
        run=ref,
        state=state,
        attempts=[earlier.recovery_id for earlier, _ in attempts],
        outputs={d.name: d.version for d in backend.run_outputs(ref)},
        metrics={m.name: m.value for m in final},
        metric_history=history,
    )


def resubmit_until_done(
    job: Submitted,
    *,
    submit: Callable[[Submitted], RunRef],
    watch: Callable[[RunRef], RunState],
    resumed: Callable[[Submitted, RunRef, RunState], Submitted | None],
    policy: ResubmitPolicy,
    sleep: Callable[[float], None] = time.sleep,
    failure: Callable[[RunRef, RunState], HimlError] = lambda ref, state: JobFailedError(state),
) -> list[tuple[RunRef, RunState]]:
    """The one resubmission loop: submit, watch, and submit again what the platform lost.

    Jobs (`run_to_completion`) and pipelines (`run_pipeline_to_completion`) differ only in
    what a lost run is and how the next submission resumes it: `resumed` says.

    Args:
        job: What is submitted (a spec, a plan, a pipeline).
        submit: Submits it, returning its run (it may find an earlier identical run).
        watch: Watches a run to its final state.
        resumed: For a run that did not complete, while resubmissions are left: what to
            submit next, resuming it, or None when submitting again would not help (a user
            error, a cancellation).
        policy: How many resubmissions, and the pauses before them.
        sleep: How to pause between attempts.
        failure: The error for a run that did not complete and is not submitted again
            (default: `JobFailedError` of its state).

    Returns:
        Every attempt's run and final state, first to last; the last one completed.

    Raises:
        HimlError: `failure`'s, for a run `resumed` gives up on, or one lost past the retries.
    """
    attempts: list[tuple[RunRef, RunState]] = []
    for attempt in range(policy.max_retries + 1):
        ref = submit(job)
        state = watch(ref)
        attempts.append((ref, state))
        if state.succeeded:
            return attempts
        again = None if attempt == policy.max_retries else resumed(job, ref, state)
        if again is None:
            raise failure(ref, state)
        delay = policy.delay(attempt + 1)
        logger.warning(
            "run %s ended %s (%s); submitting it again in %.0f s, resuming what was lost "
            "from its latest recovery checkpoint (retry %d of %d)",
            ref, state.status, state.failure_kind, delay, attempt + 1, policy.max_retries,
        )  # fmt: skip
        sleep(delay)
        job = again
    raise AssertionError("unreachable: the last attempt returns or raises")
