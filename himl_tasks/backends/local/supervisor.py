"""The supervisor of one local run: the platform's side of a job, in a process of its own.

`python -m himl_tasks.backends.local.supervisor <workspace> <run_id>` carries a submitted run
through Queued -> Preparing -> Running -> Finalizing -> Completed / Failed / Canceled, recording
each step in the registry. It outlives the process that submitted the run, as an AzureML job
outlives the laptop that submitted it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from himl_tasks import job_variables
from himl_tasks.backends.local.clusters import Preemption
from himl_tasks.backends.local.processes import (
    INHERITED_VARIABLES,
    dying_with_this_process,
    end_process_group,
    process_start_marker,
    refuse_inspection,
)
from himl_tasks.backends.local.registry import Registry, RunRow
from himl_tasks.backends.local.run_page import RunPage, rewrite_run_page
from himl_tasks.runs import CONFIGURATION_HINT, FailureKind, RunStatus, platform_failure_kind

POLL_SECONDS = 0.01
CANCEL_CHECK_SECONDS = 0.1
METRIC_CHECK_SECONDS = 0.05
PAGE_SECONDS = 2.0  # how often a running run's page is looked at (rewritten if it changed)
TERMINATE_GRACE_SECONDS = 5.0
LOG_TAIL_LINES = 20
DRIVER_LOG = "azureml-logs/70_driver_log.txt"
PREEMPTION_ERROR = "PreemptionError: Nodes of this job got pre-empted"


class _StopRequestedError(Exception):
    """The supervisor was asked to stop (SIGTERM): end the job and record why."""


@dataclass(frozen=True)
class _Outcome:
    status: RunStatus
    failure_kind: FailureKind | None = None
    error: str = ""
    exit_code: int | None = None


def main(argv: list[str]) -> int:
    """Supervises the run named on the command line; returns the exit code.

    The launcher writes the secrets this supervisor needs as JSON on its stdin (never argv or
    environment). A supervisor that finds its run ended, or supervised by another process,
    exits at once. When its run has ended, it starts the next queued runs of its cluster: their
    slot is the one it frees.
    """
    from himl_tasks.backends.local.launcher import start_queued_runs

    root, run_id = Path(argv[0]), argv[1]
    refuse_inspection()  # before the secrets are in memory
    secrets = _read_secrets()
    try:
        registry = Registry(root, create=False)
    except FileNotFoundError as error:
        print(f"{error}: run {run_id} is gone", file=sys.stderr)
        return 2

    def stop(signum: int, frame: FrameType | None) -> None:
        raise _StopRequestedError(f"the local run supervisor received signal {signum}")

    signal.signal(signal.SIGTERM, stop)
    run = registry.adopt(run_id, os.getpid(), process_start_marker(os.getpid()))
    if run is None:
        print(f"run {run_id} has ended or has another supervisor", file=sys.stderr)
        return 0
    try:
        _Supervisor(registry, run, secrets).supervise()
    except BaseException as error:  # the run must end in a terminal state whatever happens
        if not registry.path.is_file():  # the workspace is gone: nothing left to record
            return 2
        registry.move(
            run_id,
            RunStatus.FAILED,
            failure_kind=FailureKind.INFRASTRUCTURE.value,
            error=f"the local platform failed: {type(error).__name__}: {error}",
        )
        rewrite_run_page(registry, run_id, driver_log=DRIVER_LOG)
        if not isinstance(error, _StopRequestedError | KeyboardInterrupt):
            raise
    finally:
        if registry.path.is_file():
            start_queued_runs(registry, run.compute, secrets)
    return 0


def _read_secrets() -> dict[str, str]:
    """The secrets the launcher wrote on stdin (nothing when started by hand)."""
    if sys.stdin is None or sys.stdin.isatty():
        return {}
    with sys.stdin.buffer as source:
        text = source.read()
    if not text:
        return {}
    secrets: dict[str, str] = json.loads(text)["secrets"]
    return secrets


class _Supervisor:
    def __init__(self, registry: Registry, run: RunRow, secrets: dict[str, str]) -> None:
        self.registry = registry
        self.run = run
        self.secrets = secrets
        self.plan = run.launch_plan
        self.work_dir = run.run_dir / "snapshot"
        self.staging = run.run_dir / "staging"
        self.output_root = run.run_dir / "output_datasets"
        self.read_only: list[Path] = []  # input folders read in place
        self._last_cancel_check = 0.0
        self._last_metric_check = 0.0
        self._cancel_requested = False
        self._page = RunPage(registry, run, driver_log=DRIVER_LOG)

    # ---- lifecycle ------------------------------------------------------------------------

    def supervise(self) -> None:
        """Carries one attempt of the run from its slot to its end, or back to the queue."""
        self._write_page()
        try:
            if self._canceled():
                self._end(_Outcome(RunStatus.CANCELED, FailureKind.CANCELED, "canceled"))
                return
            missing = self._missing_secrets()
            if missing:
                self._end(_Outcome(RunStatus.FAILED, FailureKind.USER_ERROR, missing))
                return
            input_folders = self._stage_inputs()
            if input_folders is None:
                return
            if self._canceled():
                self._end(_Outcome(RunStatus.CANCELED, FailureKind.CANCELED, "canceled"))
                return
            outcome = self._run_attempt(input_folders)
            if outcome.failure_kind is FailureKind.PREEMPTED and self._restarts():
                self._restart_after_preemption(outcome)  # a launcher starts the next attempt
                return
            if outcome.status is RunStatus.COMPLETED:
                outcome = dataclasses.replace(self._finalize(), exit_code=outcome.exit_code)
            self._end(outcome)
        finally:
            shutil.rmtree(self.staging, ignore_errors=True)

    def _end(self, outcome: _Outcome) -> None:
        # The staged inputs go before the run is seen to end: whoever waits for the end finds
        # nothing of them left.
        shutil.rmtree(self.staging, ignore_errors=True)
        self._write_page(outcome.status, outcome.error)
        # A driver that ends (killed, failed) leaves no child run going, before it is seen to
        # end: a pipeline's steps or a sweep's trials would run on unwatched, beside those of
        # a resubmission.
        for child in self.registry.runs(parent_run_id=self.run.run_id):
            if not child.status.is_terminal and self.registry.cancel(child.run_id):
                rewrite_run_page(self.registry, child.run_id, driver_log=DRIVER_LOG)
        self.registry.move(
            self.run.run_id,
            outcome.status,
            failure_kind=outcome.failure_kind.value if outcome.failure_kind else None,
            error=outcome.error,
            exit_code=outcome.exit_code,
        )

    def _write_page(self, status: RunStatus | None = None, error: str | None = None) -> None:
        """Rewrites the run's page (`run_page`); a page that cannot be written ends nothing."""
        try:
            self._page.write(status, error)
        except (OSError, sqlite3.Error) as failure:
            print(f"could not write the page of run {self.run.run_id}: {failure}", file=sys.stderr)

    def _canceled(self, *, fresh: bool = False) -> bool:
        """True once the run is no longer this supervisor's to carry on.

        That is: its cancellation was asked for, it ended or was handed to another supervisor,
        or the registry itself is gone (the workspace was deleted). No supervisor outlives
        its run. The registry is read at most every `CANCEL_CHECK_SECONDS`, unless `fresh`.
        """
        now = time.monotonic()
        due = fresh or now - self._last_cancel_check >= CANCEL_CHECK_SECONDS
        if not self._cancel_requested and due:
            self._last_cancel_check = now
            try:
                current = self.registry.get_run(self.run.run_id)
            except sqlite3.Error:
                current = None
            self._cancel_requested = (
                current is None
                or current.cancel_requested
                or current.status.is_terminal
                or current.supervisor_pid != os.getpid()
            )
        return self._cancel_requested

    def _missing_secrets(self) -> str:
        """Why the job's secret references cannot be resolved ("" when they can)."""
        names = sorted(set(self.plan.secret_variables.values()) - set(self.secrets))
        if not names:
            return ""
        return (
            f"the job's secret reference names environment variable {', '.join(names)}, which "
            "the process that started the run did not hold (the run was started by another "
            "run's supervisor, which only holds the secrets of the runs waiting when it "
            "started): set it in the environment of every process that submits runs to this "
            "workspace, and submit the job again"
        )

    # ---- data -----------------------------------------------------------------------------

    def _stage_inputs(self) -> list[Path] | None:
        if not self.plan.inputs:
            return []  # without importing the storage stack: a bare job starts sooner
        from himl_tasks.backends.local.staging import stage_input
        from himl_tasks.backends.local.workspace_config import LocalWorkspaceConfig
        from himl_tasks.errors import HimlError

        config = LocalWorkspaceConfig.load(self.registry.root, environ=self.secrets)
        folders: list[Path] = []
        for index, dataset in enumerate(self.plan.inputs):
            try:
                store = config.datastore(dataset.datastore)
                staged = stage_input(store, dataset, self.staging / str(index))
            except HimlError as error:
                kind = platform_failure_kind(error)
                self._end(
                    _Outcome(
                        RunStatus.FAILED,
                        kind,
                        f"input dataset '{dataset.name}' version {dataset.version} could "
                        f"not be made available: {error}" + _hint(kind),
                    )
                )
                return None
            folders.append(staged.folder)
            if not staged.is_copy:
                self.read_only.append(staged.folder.resolve())
        return folders

    def _finalize(self) -> _Outcome:
        self.registry.move(self.run.run_id, RunStatus.FINALIZING)
        outputs = self.plan.outputs
        if not outputs:
            return _Outcome(RunStatus.COMPLETED)
        empty = [
            o.name
            for i, o in enumerate(outputs)
            if not any(p.is_file() for p in (self.output_root / str(i)).rglob("*"))
        ]
        if empty:
            return _Outcome(
                RunStatus.FAILED,
                FailureKind.USER_ERROR,
                f"the job wrote no files into output dataset {', '.join(empty)}; nothing was "
                "registered",
            )
        from himl_tasks.backends.local.staging import publish_output
        from himl_tasks.backends.local.step_reuse import version_digest
        from himl_tasks.backends.local.workspace_config import LocalWorkspaceConfig
        from himl_tasks.errors import HimlError

        config = LocalWorkspaceConfig.load(self.registry.root, environ=self.secrets)
        published: list[tuple[str, str, str, str | None]] = []
        try:
            for index, output in enumerate(outputs):
                store = config.datastore(output.datastore)
                path = publish_output(
                    store, self.output_root / str(index), output.name, self.run.run_id
                )
                published.append((output.name, store.name, path, version_digest(store, path)))
        except HimlError as error:
            kind = platform_failure_kind(error)
            return _Outcome(
                RunStatus.FAILED,
                kind,
                f"uploading the output datasets failed; nothing was registered: {error}"
                + _hint(kind),
            )
        # Registered only once every output is uploaded, in one transaction: all of the run's
        # datasets, or none, even if this process is killed while registering them.
        self.registry.add_run_outputs(published, self.run.run_id)
        shutil.rmtree(self.output_root, ignore_errors=True)
        return _Outcome(RunStatus.COMPLETED)

    # ---- processes ------------------------------------------------------------------------

    def _run_attempt(self, input_folders: list[Path]) -> _Outcome:
        attempt = self._attempt()
        if self._canceled(fresh=True):  # a run canceled while it was prepared never starts
            return _Outcome(RunStatus.CANCELED, FailureKind.CANCELED, "canceled")
        processes, logs = self._start_processes(input_folders, attempt)
        # Recorded before Running: whoever sees Running can also find the processes to end.
        self.registry.set_job_group(self.run.run_id, processes[0].pid)
        # Only from Preparing: a cancel asked for meanwhile stays asked for (ended just below).
        self.registry.move(self.run.run_id, RunStatus.RUNNING, only_from=(RunStatus.PREPARING,))
        max_seconds = self.plan.max_run_seconds
        preemption = self._preemption_for(attempt)
        attempt_started = time.monotonic()
        # The time limit counts from the run's first Running, over every attempt (an attempt
        # after a platform restart has a supervisor of its own).
        current = self.registry.get_run(self.run.run_id)
        first_started = current.started_at if current and current.started_at else time.time()
        first_running = attempt_started - max(0.0, time.time() - first_started)
        last_page = float("-inf")
        try:
            while True:
                codes = [p.poll() for p in processes]
                failed = next((c for c in codes if c not in (None, 0)), None)
                if failed is not None:
                    end_process_group(processes, grace_seconds=TERMINATE_GRACE_SECONDS)
                    return _Outcome(
                        RunStatus.FAILED,
                        FailureKind.USER_ERROR,
                        self._exit_error(failed, logs),
                        exit_code=failed,
                    )
                if all(c == 0 for c in codes):
                    return _Outcome(RunStatus.COMPLETED, exit_code=0)
                now = time.monotonic()
                if preemption is not None and self._preemption_due(
                    preemption, attempt, now - attempt_started
                ):
                    end_process_group(processes, grace_seconds=0, kill_at_once=True)
                    return _Outcome(
                        RunStatus.FAILED,
                        FailureKind.PREEMPTED,
                        f"{PREEMPTION_ERROR} (low-priority compute '{self.run.compute}', "
                        f"attempt {attempt})",
                    )
                if max_seconds is not None and now - first_running >= max_seconds:
                    end_process_group(processes, grace_seconds=TERMINATE_GRACE_SECONDS)
                    return _Outcome(
                        RunStatus.FAILED,
                        FailureKind.TIMEOUT,
                        f"the run exceeded max_run_duration ({max_seconds:g} s) and was stopped",
                    )
                if self._canceled():
                    self.registry.move(self.run.run_id, RunStatus.CANCEL_REQUESTED)
                    end_process_group(processes, grace_seconds=TERMINATE_GRACE_SECONDS)
                    return _Outcome(RunStatus.CANCELED, FailureKind.CANCELED, "canceled")
                if now - last_page >= PAGE_SECONDS:
                    last_page = now
                    self._write_page(RunStatus.RUNNING, "")
                time.sleep(POLL_SECONDS)
        except BaseException:
            end_process_group(processes, grace_seconds=TERMINATE_GRACE_SECONDS)
            raise
        finally:
            self.registry.set_job_group(self.run.run_id, None)
            for log in logs:
                log.close()

    def _start_processes(
        self, input_folders: list[Path], attempt: int
    ) -> tuple[list[subprocess.Popen[bytes]], list[Any]]:
        nodes, per_node = self.plan.num_nodes, self.plan.processes_per_node
        world = nodes * per_node
        base_variables = self._job_variables(input_folders, attempt)
        if world > 1:
            base_variables.update(
                MASTER_ADDR="127.0.0.1", MASTER_PORT=str(_free_port()), WORLD_SIZE=str(world)
            )
        log_dir = self.work_dir / "azureml-logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        command = list(self.plan.command)
        notice = b""
        if self.read_only:
            from himl_tasks.backends.local.read_only import (
                read_only_mounts_available,
                with_read_only_folders,
            )

            if read_only_mounts_available():
                command = with_read_only_folders(command, self.read_only)
            else:
                notice = (
                    b"himl-tasks: mounted input datasets are NOT read-only on this machine (no "
                    b"mount namespaces); the job must not write into them\n"
                )
        processes: list[subprocess.Popen[bytes]] = []
        logs: list[Any] = []
        try:
            for rank in range(world):
                env = dict(base_variables)
                if world > 1:
                    env.update(
                        RANK=str(rank),
                        NODE_RANK=str(rank // per_node),
                        LOCAL_RANK=str(rank % per_node),
                        LOCAL_WORLD_SIZE=str(per_node),
                    )
                name = DRIVER_LOG if rank == 0 else DRIVER_LOG.replace(".txt", f"_{rank}.txt")
                log = (self.work_dir / name).open("ab")
                logs.append(log)
                if attempt > 1:
                    log.write(f"\n----- attempt {attempt} -----\n".encode())
                log.write(notice)
                log.flush()
                processes.append(
                    subprocess.Popen(
                        command,
                        cwd=self.work_dir,
                        env=env,
                        stdin=subprocess.DEVNULL,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        process_group=processes[0].pid if processes else 0,
                        preexec_fn=dying_with_this_process(),
                    )
                )
        except BaseException:
            end_process_group(processes, grace_seconds=0, kill_at_once=True)
            for log in logs:
                log.close()
            raise
        return processes, logs

    def _job_variables(self, input_folders: list[Path], attempt: int) -> dict[str, str]:
        """The job's process variables: a few inherited, its own, and the `HIML_*` contract."""
        env = {k: v for k, v in os.environ.items() if k in INHERITED_VARIABLES}
        env.update(self.plan.environment_variables)
        for name, variable in self.plan.secret_variables.items():
            env[name] = self.secrets[variable]  # resolved now, never recorded
        python_path = [str(self.work_dir), *self.plan.extra_python_path]
        env.update(
            {
                "PYTHONPATH": os.pathsep.join(python_path),
                "PYTHONUNBUFFERED": "1",
                job_variables.IN_JOB: job_variables.LOCAL_IN_JOB,
                job_variables.WORKSPACE: str(self.registry.root),
                job_variables.RUN_ID: self.run.run_id,
                job_variables.EXPERIMENT: self.run.experiment,
                job_variables.ATTEMPT: str(attempt),
                job_variables.OUTPUT_FOLDER: str(self.work_dir / "outputs"),
                job_variables.LOGS_FOLDER: str(self.work_dir / "logs"),
                job_variables.INPUT_DATASET_COUNT: str(len(input_folders)),
                job_variables.OUTPUT_DATASET_COUNT: str(len(self.plan.outputs)),
            }
        )
        for index, folder in enumerate(input_folders):
            env[job_variables.input_dataset(index)] = str(folder)
        for index in range(len(self.plan.outputs)):
            folder = self.output_root / str(index)
            folder.mkdir(parents=True, exist_ok=True)
            env[job_variables.output_dataset(index)] = str(folder)
        (self.work_dir / "outputs").mkdir(exist_ok=True)
        (self.work_dir / "logs").mkdir(exist_ok=True)
        return env

    def _exit_error(self, exit_code: int, logs: list[Any]) -> str:
        for log in logs:
            log.flush()
        tail = _tail(self.work_dir / DRIVER_LOG, LOG_TAIL_LINES)
        how = f"signal {-exit_code}" if exit_code < 0 else f"exit code {exit_code}"
        return f"the job's process ended with {how}. Last lines of its log:\n{tail}"

    # ---- preemption -----------------------------------------------------------------------

    def _attempt(self) -> int:
        current = self.registry.get_run(self.run.run_id)
        return current.attempt if current is not None else 1

    def _preemption_for(self, attempt: int) -> Preemption | None:
        settings = self.plan.preemption_for(attempt)
        if settings is None:
            return None
        limit = settings.max_preemptions
        if limit is not None and self.registry.preemptions_on(self.run.compute) >= limit:
            return None
        return settings

    def _preemption_due(self, settings: Preemption, attempt: int, elapsed: float) -> bool:
        """True once the attempt is as far as the cluster's preemption says (time or metric)."""
        if settings.after_seconds is not None:
            return elapsed >= settings.after_seconds
        now = time.monotonic()
        if now - self._last_metric_check < METRIC_CHECK_SECONDS:
            return False  # a registry read per poll would cost more than the job
        self._last_metric_check = now
        assert settings.after_metric is not None  # a preemption has a time or a metric
        name, count = settings.after_metric
        logged = self.registry.metrics(self.run.run_id)
        return sum(1 for m in logged if m["name"] == name and m["attempt"] == attempt) >= count

    def _restarts(self) -> bool:
        return self.plan.preemption is not None and self.plan.preemption.restarts

    def _restart_after_preemption(self, outcome: _Outcome) -> None:
        self.registry.start_next_attempt(
            self.run.run_id,
            failure_kind=FailureKind.PREEMPTED.value,
            error=outcome.error,
            exit_code=outcome.exit_code,
        )
        assert self.plan.preemption is not None  # only a preemption restarts a run
        delay = self.plan.preemption.restart_delay_seconds
        deadline = time.monotonic() + delay
        while time.monotonic() < deadline and not self._canceled():
            time.sleep(0.02)
        # Back in the queue with no process; this supervisor's exit starts the queue again.
        self.registry.requeue(self.run.run_id, (os.getpid(), process_start_marker(os.getpid())))


def _hint(kind: FailureKind) -> str:
    return f" {CONFIGURATION_HINT}" if kind is FailureKind.CONFIGURATION else ""


def _tail(path: Path, lines: int) -> str:
    try:
        text = path.read_bytes()[-64_000:].decode("utf-8", errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
