"""Prefect tasks, one per capability. Thin: the logic lives in the backend-neutral modules.

Every task names its workspace by a saved block ("local-workspace/demo",
"azureml-workspace/prod"), so credentials never travel as parameters. Submitting has side
effects, so no task here is cached by its inputs; instead, a job is submitted under its identity
(spec, snapshot content, input dataset versions), which the backend records with the run in
the same step, and a flow re-run after a crash at any point finds the run it started rather
than submitting the job again (see `himl_tasks.jobs.submit_once`).

Example:
    ```python
    from prefect import flow

    from himl_tasks import JobSpec
    from himl_tasks.prefect.tasks import ensure_dataset, run_job, upload_to_datastore


    @flow
    def train(workspace_block: str = "local-workspace/demo") -> float:
        upload_to_datastore(workspace_block, "", "data/raw", "scans")
        scans = ensure_dataset(workspace_block, "scans")
        spec = JobSpec(entry_script="train.py", input_datasets=[scans["name"]])
        result = run_job(workspace_block, spec, max_retries=2)
        return result.metrics["test_accuracy"]
    ```
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import hashlib
import json
import threading
import time
from pathlib import Path
from typing import Any
from uuid import UUID

from prefect import get_run_logger, task
from prefect.artifacts import (
    create_link_artifact,
    create_progress_artifact,
    create_table_artifact,
)
from prefect.cache_policies import NO_CACHE
from prefect.variables import Variable

from himl_tasks import checkpoints
from himl_tasks.backends import checkpoint_files
from himl_tasks.backends.base import Backend
from himl_tasks.backends.watching import PollSchedule
from himl_tasks.datasets import DatasetConfig, as_dataset_config
from himl_tasks.errors import JobFailedError
from himl_tasks.job_spec import JobSpec
from himl_tasks.jobs.identity import job_identity
from himl_tasks.jobs.run_to_completion import (
    JobResult,
    ResubmitPolicy,
    run_to_completion,
)
from himl_tasks.jobs.submit_once import submit_once, submit_sweep_once
from himl_tasks.prefect.blocks import load_backend
from himl_tasks.run_plan import RunPlan
from himl_tasks.runs import RunRef, RunState
from himl_tasks.storage import TransferReport
from himl_tasks.sweeps import SweepSpec

STARTED_VARIABLE_PREFIX = "himl-started-"
CANCEL_CHECK_SECONDS = 2.0
DEFAULT_TIMEOUT_SECONDS = 7 * 86400.0


@functools.lru_cache(maxsize=16)
def backend_for(workspace_block: str) -> Backend:
    """The backend of a saved workspace block, loaded once per process."""
    return load_backend(workspace_block)


# ---- data ---------------------------------------------------------------------------------


@task(cache_policy=NO_CACHE)
def upload_to_datastore(
    workspace_block: str,
    datastore_name: str,
    local_folder: str | Path,
    remote_path: str,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Uploads a folder's files to a datastore (hi-ml's semantics; unchanged files are skipped).

    Progress shows as a progress artifact. Returns the transfer report as a dict.
    """
    store = backend_for(workspace_block).datastore(datastore_name)
    with ArtifactProgress(f"upload to {store.name}/{remote_path}") as progress:
        report = store.upload_folder(
            local_folder, remote_path, overwrite=overwrite, show_progress=progress
        )
    return _reported(report)


@task(cache_policy=NO_CACHE)
def download_from_datastore(
    workspace_block: str,
    datastore_name: str,
    prefix: str,
    output_folder: str | Path,
    overwrite: bool = False,
    validate_checksum: bool = True,
) -> dict[str, Any]:
    """Downloads the files whose names start with `prefix`, keeping their names."""
    store = backend_for(workspace_block).datastore(datastore_name)
    with ArtifactProgress(f"download from {store.name}/{prefix}") as progress:
        report = store.download(
            prefix,
            output_folder,
            overwrite=overwrite,
            validate_checksum=validate_checksum,
            show_progress=progress,
        )
    return _reported(report)


@task(cache_policy=NO_CACHE)
def ensure_dataset(workspace_block: str, dataset: DatasetConfig | str) -> dict[str, Any]:
    """Finds a dataset's version, creating version 1 from its datastore folder if missing.

    Returns:
        `{"name", "version", "datastore", "path"}`.

    Example:
        ```python
        @flow
        def latest_scans(block: str = "local-workspace/demo") -> int:
            return ensure_dataset(block, DatasetConfig("scans"))["version"]
        ```
    """
    resolved = backend_for(workspace_block).resolve_dataset(as_dataset_config(dataset))
    get_run_logger().info("dataset %s is version %d", resolved.name, resolved.version)
    return {
        "name": resolved.name,
        "version": resolved.version,
        "datastore": resolved.datastore,
        "path": resolved.path,
    }


# ---- jobs ---------------------------------------------------------------------------------


@task(cache_policy=NO_CACHE)
def submit_job(workspace_block: str, spec: JobSpec) -> RunRef:
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
    return _submit(workspace_block, spec)


@task(cache_policy=NO_CACHE)
def wait_for_job(
    workspace_block: str,
    run: RunRef | str,
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
) -> RunState:
    """Waits for a run, forwarding its log lines to this task's log; returns its final state.

    Raises:
        JobFailedError: If the run ends other than Completed (the error carries the state).
        TimeoutError: If it has not ended after `timeout_seconds`.
    """
    backend = backend_for(workspace_block)
    ref = backend_run(backend, run)
    state = _watch(backend, ref, timeout_seconds)
    if not state.succeeded:
        raise JobFailedError(state)
    return state


@task(cache_policy=NO_CACHE)
def run_job(
    workspace_block: str,
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
    # Planned once: every submission of this job, resubmissions included, reads this plan
    # and is a link of one identity's chain.
    plan = backend.plan(spec)
    identity = _identity(plan, workspace_block)
    started = datetime.datetime.now(datetime.UTC)
    result = run_to_completion(
        backend,
        plan,
        submit=lambda p: _submit(workspace_block, p, identity),
        watch=lambda ref: _watch(backend, ref, timeout_seconds),
        policy=policy,
    )
    created = result.state.created_at
    result.reused = len(result.attempts) == 1 and created is not None and created < started
    if result.metrics:
        create_table_artifact(
            table=[{"metric": k, "value": v} for k, v in sorted(result.metrics.items())],
            key=_artifact_key("metrics", result.run.run_id),
            description=f"Final metrics of run {result.run}",
        )
    return result


@task(cache_policy=NO_CACHE)
def run_sweep(workspace_block: str, spec: JobSpec, sweep: SweepSpec) -> RunRef:
    """Submits a hyperparameter sweep around a job; its trials are the run's children.

    On AzureML it is a HyperDrive run; locally, a parent run that runs the trials (grid and
    random sampling).

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
    # Idempotent as `submit_job`: a flow re-run after a crash finds the sweep it made.
    plan = backend.plan(spec)
    job = job_identity(plan, workspace=workspace_block)
    sweep_fields = json.dumps(dataclasses.asdict(sweep), sort_keys=True, default=str)
    digest = hashlib.sha256(f"{job}\0{sweep_fields}".encode()).hexdigest()
    ref, found = submit_sweep_once(backend, plan, sweep, "himl-sweep-" + digest[:48])
    if found:
        get_run_logger().info("the same sweep already has run %s: not submitting it again", ref)
    _link(ref, "sweep")
    return ref


@task(cache_policy=NO_CACHE)
def download_run_files(
    workspace_block: str,
    run: RunRef | str,
    prefix: str,
    destination: str | Path,
    validate_checksum: bool = True,
) -> dict[str, Any]:
    """Downloads a run's files (outputs/, logs/, ...) whose names start with `prefix`."""
    backend = backend_for(workspace_block)
    report = backend.download_files(
        backend_run(backend, run), prefix, Path(destination), validate_checksum=validate_checksum
    )
    return _reported(report)


@task(cache_policy=NO_CACHE)
def download_checkpoints(
    workspace_block: str,
    run: RunRef | str,
    destination: str | Path,
    checkpoint_folder: str = checkpoints.DEFAULT_CHECKPOINT_FOLDER,
) -> Path:
    """Downloads a run's checkpoints (checksums always checked); returns the local folder.

    Example:
        ```python
        @flow
        def fetch(run: str, block: str = "local-workspace/demo") -> Path:
            return download_checkpoints(block, run, "checkpoints")
        ```
    """
    backend = backend_for(workspace_block)
    checkpoint_files.download_checkpoints(
        backend,
        backend_run(backend, run),
        Path(destination),
        checkpoint_folder=checkpoint_folder,
    )
    return Path(destination) / checkpoint_folder


# ---- helpers ------------------------------------------------------------------------------


def backend_run(backend: Backend, run: RunRef | str) -> RunRef:
    """A run given as a `RunRef` or a recovery id."""
    return run if isinstance(run, RunRef) else backend.get_run_ref(run)


def _identity(plan: RunPlan, workspace_block: str) -> str:
    return "himl-job-" + job_identity(plan, workspace=workspace_block)[:48]


def _submit(workspace_block: str, job: JobSpec | RunPlan, identity: str | None = None) -> RunRef:
    """Submits a job unless its identity (computed when not given) has a live or completed run."""
    backend = backend_for(workspace_block)
    logger = get_run_logger()
    plan = job if isinstance(job, RunPlan) else backend.plan(job)
    ref, found = submit_once(backend, plan, identity or _identity(plan, workspace_block))
    if found:
        logger.info(
            "the same job (spec, snapshot and inputs) already has run %s: not submitting it again",
            ref,
        )
        return ref
    _remember_started(workspace_block, ref)
    logger.info("submitted run %s: %s", ref, ref.portal_url)
    _link(ref, "run")
    return ref


def cancel_started_jobs(flow: object, flow_run: Any, state: object) -> None:
    """A flow hook: cancels the jobs this flow run submitted that are still going.

    Use it for `on_cancellation`, `on_crashed` and `on_failure`: a flow run that ends early
    (or whose process a worker killed) leaves no job running. Waiting tasks also notice a
    cancellation themselves; this hook covers a flow process that was killed first.
    """
    name = STARTED_VARIABLE_PREFIX + str(flow_run.id)
    started: Any = Variable.get(name, default=[])
    for item in started if isinstance(started, list) else []:
        backend = backend_for(str(item["workspace"]))
        ref = backend.get_run_ref(str(item["run"]))
        if not backend.get_state(ref).is_terminal:
            backend.cancel(ref)
    Variable.unset(name)


def forget_started_jobs(flow: object, flow_run: Any, state: object) -> None:
    """A flow hook for `on_completion`: drops the record of the jobs the flow run submitted."""
    Variable.unset(STARTED_VARIABLE_PREFIX + str(flow_run.id))


def _remember_started(workspace_block: str, ref: RunRef) -> None:
    """Records a submission under the current flow run, for `cancel_started_jobs`."""
    from prefect.runtime import flow_run

    if not flow_run.id:
        return
    name = STARTED_VARIABLE_PREFIX + str(flow_run.id)
    started: Any = Variable.get(name, default=[])
    entries = started if isinstance(started, list) else []
    entries.append({"workspace": workspace_block, "run": ref.recovery_id})
    Variable.set(name, entries, overwrite=True)


def _watch(backend: Backend, ref: RunRef, timeout_seconds: float) -> RunState:
    logger = get_run_logger()
    state = backend.watch(
        ref,
        timeout_seconds=timeout_seconds,
        on_line=lambda line: logger.info("[%s] %s", ref.run_id, line),
        should_cancel=_every(CANCEL_CHECK_SECONDS, _flow_run_is_canceling),
    )
    logger.info("run %s ended %s", ref, state.status)
    return state


def _flow_run_is_canceling() -> bool:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.objects import StateType
    from prefect.runtime import flow_run

    if not flow_run.id:
        return False
    with get_client(sync_client=True) as client:
        state = client.read_flow_run(UUID(str(flow_run.id))).state
    return state is not None and state.type in (StateType.CANCELLING, StateType.CANCELLED)


def _every(seconds: float, check: Any) -> Any:
    """Calls `check` at most once per `seconds`; in between, says False."""
    last = float("-inf")

    def throttled() -> bool:
        nonlocal last
        if time.monotonic() - last < seconds:
            return False
        last = time.monotonic()
        return bool(check())

    return throttled


def _link(ref: RunRef, kind: str) -> None:
    if ref.portal_url:
        create_link_artifact(
            link=ref.portal_url,
            link_text=f"{kind} {ref.recovery_id}",
            key=_artifact_key(kind, ref.run_id),
            description=f"The {kind} {ref.recovery_id} on the {ref.backend} backend",
        )


def _artifact_key(kind: str, run_id: str) -> str:
    cleaned = "".join(c if c.isalnum() else "-" for c in run_id.lower()).strip("-")
    return f"{kind}-{cleaned}"[:100]


def _reported(report: TransferReport) -> dict[str, Any]:
    get_run_logger().info(report.summary())
    fields = dataclasses.asdict(report)
    del fields["operation"]  # the task's name says it
    return fields


class ArtifactProgress:
    """Reports a transfer's progress to a Prefect progress artifact.

    The engine reports from its event loop; updates go to the API from a helper thread, at
    most one per second, so the transfer never waits for Prefect.
    """

    def __init__(self, description: str) -> None:
        self.description = description
        self.total_bytes = 0
        self.done_bytes = 0
        self.artifact: UUID | None = None
        self._last_post = 0.0
        self._pending: threading.Thread | None = None

    def __enter__(self) -> ArtifactProgress:
        created = create_progress_artifact(0.0, description=self.description)
        self.artifact = created if isinstance(created, UUID) else None
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._pending is not None:
            self._pending.join()
        if self.artifact is not None and exc_info[0] is None:
            _set_progress(self.artifact, 100.0)

    def start(self, files: int, total_bytes: int) -> None:
        """Called once the plan is known."""
        self.total_bytes = total_bytes

    def advance(self, nbytes: int) -> None:
        """Called as bytes move."""
        self.done_bytes += nbytes
        now = time.monotonic()
        busy = self._pending is not None and self._pending.is_alive()
        if self.artifact is None or busy or now - self._last_post < 1.0:
            return
        percent = 100.0 * self.done_bytes / self.total_bytes if self.total_bytes else 100.0
        self._last_post = now
        self._pending = threading.Thread(
            target=_set_progress, args=(self.artifact, percent), daemon=True
        )
        self._pending.start()

    def file_done(self) -> None:
        """Called as each file completes."""


def _set_progress(artifact: UUID, percent: float) -> None:
    """Updates a progress artifact (Prefect's own helper leaves its client open)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import ArtifactUpdate

    with get_client(sync_client=True) as client:
        client.update_artifact(artifact_id=artifact, artifact=ArtifactUpdate(data=percent))
