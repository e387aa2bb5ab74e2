"""Submitting a job once: a crash and a re-run find the run already made, never make a second.

Every submission of a job carries a submission id derived from its identity (spec, snapshot
content, input dataset versions; see `job_identity`), and the backend records the id with the
run atomically: submitting again under the same id returns the same run, whenever the
submitter died. The ids of one job form a chain, `<identity>`, `<identity>.2`,
`<identity>.3`, ...: a link whose run failed or was canceled is followed by the next, so a
lost job can be submitted again (a resubmission after preemption, a re-run after a failure)
while a job that completed, or is still going, is never submitted twice.
"""

from __future__ import annotations

import itertools

from himl_tasks.backends.base import Backend
from himl_tasks.run_plan import RunPlan
from himl_tasks.runs import RESUBMITTABLE, RunRef, RunState
from himl_tasks.sweeps import SweepSpec


def nth_submission_id(identity: str, number: int) -> str:
    """The id of submission `number` (from 1) of the job with that identity."""
    return identity if number == 1 else f"{identity}.{number}"


def submit_once(backend: Backend, plan: RunPlan, identity: str) -> tuple[RunRef, bool]:
    """Returns the job's run: the live or completed one of its identity, else a new one.

    The job is submitted as `plan` prepared it: nothing is resolved again.

    The chain of the identity's submission ids is walked in order. The first link with no
    run is submitted (the backend makes it idempotent); the first whose run completed or is
    still going is returned instead. A new submission after a run lost to the platform
    (preempted, infrastructure) resumes from that run's recovery checkpoint unless the spec
    already says where to resume from, as the flow that crashed would have done.

    Returns:
        The run, and whether it was found rather than submitted now.
    """
    sid, found, last_ended = walk_chain(backend, identity)
    if found is not None:
        return found, True
    if last_ended is not None and not plan.spec.resume_from:
        ended, state = last_ended
        if state.failure_kind in RESUBMITTABLE:
            plan = plan.resuming_from(ended.recovery_id)
    return backend.submit(plan, submission_id=sid), False


def submit_sweep_once(
    backend: Backend, plan: RunPlan, sweep: SweepSpec, identity: str
) -> tuple[RunRef, bool]:
    """Returns the sweep's run: the live or completed one of its identity, else a new one.

    The same chain as `submit_once`: a sweep whose run failed or was canceled is submitted
    again under the next id; one that completed, or is still going, never is.

    Returns:
        The sweep's parent run, and whether it was found rather than submitted now.
    """
    sid, found, _ = walk_chain(backend, identity)
    if found is not None:
        return found, True
    return backend.submit_sweep(plan, sweep, submission_id=sid), False


def walk_chain(
    backend: Backend, identity: str
) -> tuple[str, RunRef | None, tuple[RunRef, RunState] | None]:
    """Walks the identity's chain to its first link with no run, or with a live or good one.

    Jobs, sweeps and pipelines (`submit_pipeline_once`) are submitted along it.

    Returns:
        That link's submission id; its run if it has one (completed or still going), else
        None; and the run before it that ended without completing, with its final state.
    """
    last_ended: tuple[RunRef, RunState] | None = None
    for number in itertools.count(1):
        sid = nth_submission_id(identity, number)
        found = backend.find_submission(sid)
        if found is None:
            return sid, None, last_ended
        state = backend.get_state(found)
        if state.succeeded or not state.is_terminal:
            return sid, found, last_ended
        last_ended = (found, state)
    raise AssertionError("unreachable: the chain of submission ids has no end")
