"""Running a job to the end: watching it, and resubmitting it when the platform lost it.

A run that ends `preempted` or `infrastructure` is submitted again, resuming from its latest
recovery checkpoint (`JobSpec.resume_from`), up to `ResubmitPolicy.max_retries` times with
exponential backoff. A `user_error` is never retried: the same code would fail again. A run
that the platform restarts itself (AzureML's low-priority restart, the local backend's
`mode="restart"`) stays active, so watching simply goes on.

Nothing here imports Prefect; `himl_tasks.prefect.job_tasks` wraps it.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from himl_tasks.backends.base import Backend
from himl_tasks.backends.watching import LineBuffer
from himl_tasks.errors import InvalidInputError, JobFailedError
from himl_tasks.job_spec import JobSpec
from himl_tasks.number_checks import is_seconds, is_whole_number
from himl_tasks.runs import FailureKind, Metric, RunRef, RunState

logger = logging.getLogger(__name__)

RETRYABLE = frozenset({FailureKind.PREEMPTED, FailureKind.INFRASTRUCTURE})


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


@dataclass(frozen=True)
class WatchSettings:
    """How a run is watched.

    Args:
        timeout_seconds: Give up (TimeoutError) after this long, whatever the run does.
        first_poll_seconds: The first pause between state checks; it grows by half each time.
        max_poll_seconds: The longest pause between state checks.
    """

    timeout_seconds: float = 7 * 86400
    first_poll_seconds: float = 0.1
    max_poll_seconds: float = 10.0

    def __post_init__(self) -> None:
        # No wait without a deadline: inf and nan would never end, 0 would end before looking.
        for name in ("timeout_seconds", "first_poll_seconds", "max_poll_seconds"):
            if not is_seconds(getattr(self, name), zero_ok=False):
                raise InvalidInputError(
                    f"{name} must be a positive, finite number of seconds, not "
                    f"{getattr(self, name)!r}"
                )


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
    metrics: dict[str, float] = field(default_factory=dict)
    metric_history: list[Metric] = field(default_factory=list)
    reused: bool = False


def watch_run(
    backend: Backend,
    ref: RunRef,
    *,
    settings: WatchSettings = WatchSettings(),
    on_line: Callable[[str], None] = lambda line: None,
    should_cancel: Callable[[], bool] = lambda: False,
) -> RunState:
    """Waits for a run to end, handing on its log lines as they appear.

    Polls with a growing pause against its own deadline (a blocking wait cannot be interrupted
    by an outer timeout). When `should_cancel()` turns true, the run is canceled and watched
    to its end.

    Raises:
        TimeoutError: If the run has not ended after `settings.timeout_seconds`.
    """
    deadline = time.monotonic() + settings.timeout_seconds
    pause = settings.first_poll_seconds
    read_new, lines = backend.log_reader(ref), LineBuffer()
    canceled = False
    while True:
        state = backend.get_state(ref)
        for line in lines.feed(read_new()):
            on_line(line)
        if state.is_terminal:
            for line in lines.flush():
                on_line(line)
            return state
        if not canceled and should_cancel():
            logger.warning("canceling run %s: its flow run is being canceled", ref)
            backend.cancel(ref)
            canceled = True
            continue
        if time.monotonic() >= deadline:
            raise TimeoutError(
                f"run {ref} is still {state.status} after {settings.timeout_seconds:g} s"
            )
        time.sleep(min(pause, max(0.0, deadline - time.monotonic())))
        pause = min(settings.max_poll_seconds, pause * 1.5)


def run_to_completion(
    backend: Backend,
    spec: JobSpec,
    *,
    submit: Callable[[JobSpec], RunRef],
    watch: Callable[[RunRef], RunState],
    policy: ResubmitPolicy = ResubmitPolicy(),
    sleep: Callable[[float], None] = time.sleep,
) -> JobResult:
    """Submits a job and watches it; resubmits it, resuming, when the platform lost it.

    Args:
        backend: Where the job runs.
        spec: The job.
        submit: Submits a spec, returning its run (it may find an earlier identical run).
        watch: Watches a run to its final state.
        policy: When to resubmit.
        sleep: How to pause between attempts.

    Raises:
        JobFailedError: For a user error, a cancellation, or a lost job past the retries.
    """
    attempts: list[str] = []
    history: list[Metric] = []
    for attempt in range(policy.max_retries + 1):
        ref = submit(spec)
        attempts.append(ref.recovery_id)
        state = watch(ref)
        final = backend.get_metrics(ref)
        history += final
        if state.succeeded:
            return JobResult(
                run=ref,
                state=state,
                attempts=attempts,
                outputs={d.name: d.version for d in backend.run_outputs(ref)},
                metrics={m.name: m.value for m in final},
                metric_history=history,
            )
        if state.failure_kind not in RETRYABLE or attempt == policy.max_retries:
            raise JobFailedError(state)
        delay = policy.delay(attempt + 1)
        logger.warning(
            "run %s ended %s (%s); submitting it again in %.0f s, resuming from its latest "
            "recovery checkpoint (retry %d of %d)",
            ref, state.status, state.failure_kind, delay, attempt + 1, policy.max_retries,
        )  # fmt: skip
        sleep(delay)
        spec = dataclasses.replace(spec, resume_from=ref.recovery_id)
    raise AssertionError("unreachable: the last attempt returns or raises")
