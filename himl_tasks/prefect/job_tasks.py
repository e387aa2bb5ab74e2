"""Prefect tasks that run jobs: submit, wait, run to completion, sweep.

Thin: the backend-neutral logic lives in `himl_tasks.jobs`. Submitting has side effects, so
no task here is cached by its inputs; instead, a job is submitted under its identity (spec,
snapshot content, input dataset versions; `himl_tasks.jobs.identity`), which the backend
records with the run in the same step, and a flow re-run after a crash at any point finds the
run it started rather than submitting the job again (`himl_tasks.jobs.submit_once`).

Every job a task submits is recorded under its flow run for the flow hooks
(`himl_tasks.prefect.hooks`), and a task waiting for a job cancels it when its flow run is
being canceled.

Example:
    ```python
    from prefect import flow

    from himl_tasks import DatasetConfig, JobSpec
    from himl_tasks.prefect import ensure_dataset, run_job, upload_folder_to_datastore


    @flow
    def train(workspace_block: str = "local-workspace/demo") -> float:
        upload_folder_to_datastore(workspace_block, "", "data/raw", "scans")
        scans = ensure_dataset(workspace_block, "scans")
        spec = JobSpec(
            entry_script="train.py",
            input_datasets=[DatasetConfig(scans.name, version=scans.version)],
        )
        result = run_job(workspace_block, spec, max_retries=2)
        return float(result.metrics["test_accuracy"])  # a metric may be text (a note)
    ```
"""

from __future__ import annotations

import datetime
from collections.abc import Callable

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from himl_tasks.backends.base import Backend
from himl_tasks.backends.watching import DEFAULT_TIMEOUT_SECONDS, PollSchedule
from himl_tasks.errors import JobFailedError
from himl_tasks.job_spec import JobSpec
from himl_tasks.jobs.identity import job_submission_identity, sweep_submission_identity
from himl_tasks.jobs.run_to_completion import (
    JobResult,
    ResubmitPolicy,
    run_to_completion,
)
from himl_tasks.jobs.submit_once import submit_once, submit_sweep_once
from himl_tasks.prefect.artifacts import create_metrics_table, create_run_link
from himl_tasks.prefect.cancellation import CANCEL_CHECK_SECONDS, every
from himl_tasks.prefect.cancellation import flow_run_is_canceling as canceling
from himl_tasks.prefect.hooks import remember_started
from himl_tasks.prefect.metric_artifacts import MetricHistoryArtifacts
from himl_tasks.prefect.workspaces import (
    WorkspaceBlockOrName,
    as_run_ref,
    backend_for,
    workspace_label,
)
from himl_tasks.run_plan import RunPlan
from himl_tasks.runs import RunRef, RunState
from himl_tasks.sweeps import SweepSpec


@task(cache_policy=NO_CACHE)
def submit_job(workspace_block: WorkspaceBlockOrName, spec: JobSpec) -> RunRef:
    """Submits a job, unless the same job already ran to completion or is still running.

    Example:
        ```python
        @flow
        def start_and_wait(block: str = "local-workspace/demo") -> float:
            run = submit_job(block, JobSpec(entry_script="train.py"))
            state = wait_for_job(block, run, timeout_seconds=3600)
            return (state.ended_at - state.started_at).total_seconds()
        ```
    """
    backend = backend_for(workspace_block)
    plan = backend.plan(spec)
    identity = job_submission_identity(plan, workspace=workspace_label(workspace_block))
    return _submit(workspace_block, backend, plan, identity)


@task(cache_policy=NO_CACHE)
def wait_for_job(
    workspace_block: WorkspaceBlockOrName,
    run: RunRef | str,
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
) -> RunState:
    """Waits for a run, forwarding its log lines to this task's log; returns its final state.

    Raises:
        JobFailedError: If the run ends other than Completed (the error carries the state).
        TimeoutError: If it has not ended after `timeout_seconds`.
    """
    backend = backend_for(workspace_block)
    state = _watch(backend, as_run_ref(backend, run), timeout_seconds)
    if not state.succeeded:
        raise JobFailedError(state)
    return state


@task(cache_policy=NO_CACHE)
def run_job(
    workspace_block: WorkspaceBlockOrName,
    spec: JobSpec,
    max_retries: int = 2,
    retry_delay_seconds: float = 10.0,
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
) -> JobResult:
    """Submits a job and waits for it, resubmitting it when the platform lost it.

    A preempted (or infrastructure-lost) run is submitted again, resuming from its latest
    recovery checkpoint, up to `max_retries` times. A user error is never retried.

    Artifacts: a link to each run, and a table of the final metrics.

    Raises:
        JobFailedError: For a user error, a cancellation, or a lost run past `max_retries`.
    """
    policy = ResubmitPolicy(max_retries=max_retries, delay_seconds=retry_delay_seconds)
    PollSchedule(timeout_seconds=timeout_seconds)  # checks it before anything is submitted
    backend = backend_for(workspace_block)
    # Planned once: the identity, every submission and every resubmission read this plan.
    plan = backend.plan(spec)
    # Every submission of this job, resubmissions included, is a link of one identity's chain.
    identity = job_submission_identity(plan, workspace=workspace_label(workspace_block))
    started = datetime.datetime.now(datetime.UTC)
    result = run_to_completion(
        backend,
        plan,
        submit=lambda job: _submit(workspace_block, backend, job, identity),
        watch=lambda ref: _watch(backend, ref, timeout_seconds),
        policy=policy,
    )
    created = result.state.created_at
    result.reused = len(result.attempts) == 1 and created is not None and created < started
    create_metrics_table(result.run, result.metrics)
    return result


@task(cache_policy=NO_CACHE)
def run_sweep(workspace_block: WorkspaceBlockOrName, spec: JobSpec, sweep: SweepSpec) -> RunRef:
    """Submits a hyperparameter sweep around a job; its trials are the run's children.

    On AzureML it is a HyperDrive run; locally, a parent run that runs the trials (grid and
    random sampling). Like `submit_job`, it submits once: a flow re-run after a crash finds
    the sweep it made.

    Example:
        ```python
        @flow
        def tune(block: str = "azureml-workspace/prod") -> str:
            spec = JobSpec(entry_script="train.py", compute="gpu-cluster")
            sweep = SweepSpec({"learning_rate": LogUniform(1e-4, 1e-1)}, "val_loss",
                              max_total_runs=12)
            return run_sweep(block, spec, sweep).recovery_id
        ```
    """
    backend = backend_for(workspace_block)
    backend.check_sweep(sweep)  # before planning: a sweep this backend refuses changes nothing
    plan = backend.plan(spec)
    identity = sweep_submission_identity(plan, sweep, workspace=workspace_label(workspace_block))
    ref, found = submit_sweep_once(backend, plan, sweep, identity)
    if found:
        get_run_logger().info("the same sweep already has run %s: not submitting it again", ref)
    create_run_link(ref, "sweep")
    return ref


def _submit(
    workspace_block: WorkspaceBlockOrName, backend: Backend, plan: RunPlan, identity: str
) -> RunRef:
    """Submits a job unless its identity has a live or completed run; records a new one."""
    ref, found = submit_once(backend, plan, identity)
    return report_submission(workspace_block, backend, ref, found, what="job", link="run")


def report_submission(
    workspace_block: WorkspaceBlockOrName,
    backend: Backend,
    ref: RunRef,
    found: bool,
    *,
    what: str,
    link: str,
) -> RunRef:
    """Logs a run found rather than submitted; records a new one for the flow hooks, linked.

    Args:
        workspace_block: The workspace the run is in.
        backend: Its backend.
        ref: The run.
        found: It was found under its identity, not submitted now.
        what: What was submitted, for the log ("job", "pipeline").
        link: The kind of its link artifact ("run", "pipeline").
    """
    logger = get_run_logger()
    if found:
        logger.info(
            "the same %s (code, settings and inputs) already has run %s: not submitting it again",
            what,
            ref,
        )
        return ref
    remember_started(workspace_block, backend, ref)
    logger.info("submitted %s run %s: %s", what, ref, ref.portal_url)
    create_run_link(ref, link)
    return ref


def _watch(backend: Backend, ref: RunRef, timeout_seconds: float) -> RunState:
    """Waits for a run to end, its log lines in the task's log, canceling it with its flow run.

    The one place the job tasks wait for a run (`wait_for_job` and `run_job`). While it waits,
    the run's metric history and progress are published as artifacts (`MetricHistoryArtifacts`).
    """
    curves = MetricHistoryArtifacts(backend, ref)
    # watch asks at each of its looks, so the curves are never read more often than the
    # backend is polled (and MetricHistoryArtifacts throttles further).
    return watch_in_task(
        backend,
        ref,
        timeout_seconds,
        log_prefix=ref.run_id,
        look=curves.tick,
        finish=curves.publish,  # the values logged after the last look
    )


def watch_in_task(
    backend: Backend,
    ref: RunRef,
    timeout_seconds: float,
    *,
    log_prefix: str,
    look: Callable[[], None],
    finish: Callable[[], None],
    what: str = "run",
) -> RunState:
    """Watches a run from a task: its log in the task's log, canceled with the flow run.

    The one watch of the tasks (a job's run, a pipeline run): `Backend.watch`, asking at
    each look whether the flow run is being canceled (at most every `CANCEL_CHECK_SECONDS`).

    Args:
        backend: Where the run is.
        ref: The run.
        timeout_seconds: The deadline.
        log_prefix: What each forwarded log line is prefixed with, in brackets.
        look: Called at each of the watch's looks (artifacts to update, more logs to follow).
        finish: Called once the run ended.
        what: What the run is, for the log.
    """
    logger = get_run_logger()
    flow_run_is_canceling = every(CANCEL_CHECK_SECONDS, canceling)

    def should_cancel() -> bool:
        look()
        return flow_run_is_canceling()

    state = backend.watch(
        ref,
        timeout_seconds=timeout_seconds,
        on_line=lambda line: logger.info("[%s] %s", log_prefix, line),
        should_cancel=should_cancel,
    )
    finish()
    logger.info("%s %s ended %s", what, ref, state.status)
    return state
