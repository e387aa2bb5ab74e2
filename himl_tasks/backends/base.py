"""The Backend: the few primitives each place that runs jobs provides, and what is built on them.

A backend (the local one, AzureML v1, ...) implements the primitives: the abstract methods
below. A few hooks (`check_snapshot`, `check_datastore`, `_fetch_dataset`) have a default here
that a backend overrides only where it differs; the pipeline primitives (`submit_pipeline`,
`pipeline_steps`, `run_inputs`, publishing and schedules) have a default that refuses
(`NotSupportedError`) on a backend that does not run pipelines yet. Everything
else is written once here, so it behaves the same on every backend:

- preparing a job once (`plan`) and submitting it idempotently under a submission id
  (`submit`, `submit_sweep`);
- waiting for a run, with its log lines, cancellation and a deadline: one loop (`watch`;
  `wait` is watching without the lines), and following its log (`iter_logs`);
- listing and downloading a run's files (`list_files`, `download_files`);
- a dataset's files on this machine (`local_dataset_folder`), and the checks before a dataset
  version is registered (`register_dataset`).

A new backend subclasses `Backend`, implements the primitives, and passes the Backend contract
suite in `himl_tasks.testing`.
"""

from __future__ import annotations

import abc
import dataclasses
import logging
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

from himl_tasks.backends.dataset_folders import download_dataset
from himl_tasks.backends.run_files import (
    RUN_FILE_FOLDERS,
    download_from_run_folders,
    list_in_run_folders,
)
from himl_tasks.backends.watching import DEFAULT_TIMEOUT_SECONDS, LogTail, PollSchedule, polls
from himl_tasks.datasets import DatasetConfig, ResolvedDataset, folder_to_register
from himl_tasks.errors import InvalidInputError, JobTimeoutError, NotSupportedError
from himl_tasks.job_spec import JobSpec
from himl_tasks.pipeline_runs import PipelineSchedule, PublishedPipeline, StepRun
from himl_tasks.pipelines import PipelineSpec
from himl_tasks.run_plan import RunPlan
from himl_tasks.runs import ListedRun, Metric, RunRef, RunState, write_most_recent_run
from himl_tasks.snapshot import Snapshot, select_snapshot
from himl_tasks.storage import Datastore, TransferReport
from himl_tasks.sweeps import SweepSpec

logger = logging.getLogger(__name__)

FIRST_POLL_SECONDS = 0.02
LOG_POLL_SECONDS = 0.05


class Backend(abc.ABC):
    """A workspace that runs jobs and keeps datasets: the local one, or AzureML.

    Attributes:
        name: The backend's name, as run references carry it.
        max_poll_seconds: The longest sensible pause between state checks of a run here.
        default_timeout_seconds: How long `watch`, `wait` and `iter_logs` wait when not told.
        run_file_folders: The folders of a run's files (`outputs/`, `logs/`, ...).
    """

    name: ClassVar[str]
    max_poll_seconds: ClassVar[float]
    default_timeout_seconds: ClassVar[float] = DEFAULT_TIMEOUT_SECONDS
    run_file_folders: ClassVar[tuple[str, ...]] = RUN_FILE_FOLDERS

    # ---- primitives: what each backend implements -----------------------------------------

    @abc.abstractmethod
    def check_compute(self, name: str) -> None:
        """Raises unless a job can name this compute cluster (a check before side effects).

        Raises:
            ComputeNotFoundError: No such cluster.
            InvalidInputError: The name cannot be used here (e.g. "" on AzureML).
        """

    @abc.abstractmethod
    def check_spec(self, spec: JobSpec) -> None:
        """Raises unless this backend can run the job (checks only, no side effect).

        Raises:
            HimlError: The subclass that names the problem (a missing compute cluster, a
                setting this backend cannot honour, ...).
        """

    @abc.abstractmethod
    def _submit_plan(self, plan: RunPlan, submission_id: str | None) -> RunRef:
        """Starts the prepared job under `submission_id` (recorded with the run as it is made).

        A concurrent submission of the same id that won the race returns the winner's run.
        """

    @abc.abstractmethod
    def _submit_sweep_plan(
        self, plan: RunPlan, sweep: SweepSpec, submission_id: str | None
    ) -> RunRef:
        """Starts a sweep around the prepared job; its trials are the run's children."""

    @abc.abstractmethod
    def find_submission(self, submission_id: str) -> RunRef | None:
        """The run submitted under `submission_id`, or None if there is none."""

    @abc.abstractmethod
    def get_run_ref(self, recovery_id: str) -> RunRef:
        """Finds a run by `experiment:run_id` or bare `run_id`.

        Raises:
            RunNotFoundError: No such run; the message names the workspace looked in.
        """

    @abc.abstractmethod
    def list_runs(self, experiment: str | None = None) -> list[ListedRun]:
        """The workspace's runs (children included), oldest first: all, or one experiment's.

        An experiment that does not exist has no runs (an empty list, not an error).
        """

    @abc.abstractmethod
    def submitted_spec(self, ref: RunRef) -> JobSpec:
        """The job spec the run was submitted with (to submit the same job again).

        Raises:
            RunNotFoundError: No such run.
            InvalidInputError: This backend does not keep the spec of its runs, or this run's.
        """

    @abc.abstractmethod
    def dataset_names(self) -> list[str]:
        """The names of the workspace's registered datasets, sorted."""

    @abc.abstractmethod
    def datastore_names(self) -> list[str]:
        """The names of the workspace's datastores, sorted."""

    @abc.abstractmethod
    def get_state(self, ref: RunRef) -> RunState:
        """The run's current state."""

    @abc.abstractmethod
    def cancel(self, ref: RunRef) -> None:
        """Cancels the run and its unfinished children (no effect on a finished run)."""

    @abc.abstractmethod
    def read_log(self, ref: RunRef, offset: int) -> bytes:
        """The run's driver log from byte `offset` on (empty while there is none yet)."""

    @abc.abstractmethod
    def run_files(self, ref: RunRef) -> Datastore:
        """The run's files as a read-only datastore view (names relative to the run)."""

    @abc.abstractmethod
    def get_metrics(self, ref: RunRef) -> list[Metric]:
        """Every metric value the run logged, in order."""

    @abc.abstractmethod
    def child_runs(self, ref: RunRef) -> list[RunRef]:
        """The run's children (e.g. the trials of a sweep), oldest first."""

    @abc.abstractmethod
    def run_outputs(self, ref: RunRef) -> list[ResolvedDataset]:
        """The dataset versions the run registered (its output datasets)."""

    @abc.abstractmethod
    def resolve_dataset(self, config: DatasetConfig) -> ResolvedDataset:
        """Finds the dataset version a config names, creating version 1 from its folder.

        Raises:
            DatasetNotFoundError: No such dataset and no folder to create it from, or no such
                version.
        """

    @abc.abstractmethod
    def _register_dataset_version(
        self, name: str, datastore: str, folder: str, created_by_run: str | None
    ) -> ResolvedDataset:
        """Records the files under `folder` (checked to exist) as the next version."""

    @abc.abstractmethod
    def datastore(self, name: str = "") -> Datastore:
        """The datastore of that name ("" for the default).

        Raises:
            DatastoreNotFoundError: No such datastore.
        """

    @abc.abstractmethod
    def check_sweep(self, sweep: SweepSpec) -> None:
        """Raises unless this backend can run the sweep (checks only, before the job's).

        Raises:
            InvalidInputError: For a sampling or policy this backend does not offer.
        """

    # ---- hooks: a default here, which a backend may override ------------------------------

    def folders_never_in_snapshots(self, snapshot_root: Path) -> list[str]:
        """Folders of `snapshot_root` this backend keeps out of every snapshot (default: none).

        Relative to the root, as `ignored_folders` are.
        """
        return []

    def check_snapshot(self, spec: JobSpec, snapshot: Snapshot) -> None:
        """Raises unless the job can run from its snapshot (by default: the script is in it).

        Raises:
            InvalidInputError: The entry script is missing, outside the snapshot or ignored.
        """
        if spec.entry_script is not None:
            snapshot.entry_script(spec.entry_script)

    def check_datastore(self, name: str) -> None:
        """Raises unless the workspace has a datastore of that name (a job's output's).

        Raises:
            DatastoreNotFoundError: No such datastore.
        """
        self.datastore(name)

    def _fetch_dataset(
        self, config: DatasetConfig, resolved: ResolvedDataset, destination: Path
    ) -> bool:
        """A backend's own way to bring a dataset to this machine (e.g. mounting).

        Returns:
            True if it did; False to have the files downloaded through the transfer engine.
        """
        return False

    def run_tags(self, ref: RunRef) -> dict[str, str]:
        """The run's tags (by default none: a backend that keeps tags overrides this)."""
        return {}

    def run_object(self, ref: RunRef) -> Any:
        """What hi-ml's functions hand users for a run (`fetch_run`, `after_submission`, ...).

        By default a `BackendRun`: the members of azureml's `Run` that hi-ml's users call, on
        this backend's primitives. A backend whose runs are azureml `Run`s returns those.
        """
        from himl_tasks.backends.backend_run import BackendRun

        return BackendRun(self, ref)

    # ---- built once: jobs -----------------------------------------------------------------

    def plan(self, spec: JobSpec) -> RunPlan:
        """Prepares a job once: checks it, selects its snapshot, resolves its inputs.

        Everything after this reads the plan; nothing resolves again. What can be checked
        without changing anything comes first: the backend's own checks, the compute, the
        datastores the outputs go to, the job against its snapshot. The inputs come last,
        because resolving an input that exists only as a folder registers its version 1: a
        job refused for a bad spec leaves nothing behind.

        Raises:
            InvalidInputError: The spec or its snapshot cannot run on this backend.
            SnapshotTooLargeError: The snapshot is over AzureML's limits.
            ComputeNotFoundError: The compute cluster does not exist.
            DatastoreNotFoundError: An output (or input) names an unknown datastore.
            DatasetNotFoundError: An input dataset or version does not exist.
        """
        self.check_spec(spec)
        self.check_compute(spec.compute)
        for config in spec.output_datasets:
            self.check_datastore(config.datastore)
        experiment = spec.experiment_name()
        snapshot = select_snapshot(
            spec.snapshot_root,
            [*spec.ignored_folders, *self.folders_never_in_snapshots(spec.snapshot_root)],
        )
        self.check_snapshot(spec, snapshot)
        inputs = tuple(self.resolve_dataset(config) for config in spec.input_datasets)
        return RunPlan(
            spec=spec,
            experiment=experiment,
            snapshot=snapshot,
            inputs=inputs,
            workspace=self.workspace_key(),
        )

    def workspace_key(self) -> str:
        """Names this backend's workspace, so a plan is submitted only where it was made.

        By default this backend object alone; a backend names its workspace (a folder, a
        subscription's workspace) so two objects on one workspace share a key.
        """
        return f"{type(self).__name__}@{id(self):x}"

    def workspace_description(self) -> str:
        """The workspace as a person recognises it in a message (by default its key)."""
        return f"the workspace {self.workspace_key()}"

    def submit(self, job: JobSpec | RunPlan, *, submission_id: str | None = None) -> RunRef:
        """Starts a job; returns at once with its run.

        With `submission_id`, submitting is idempotent: the id is recorded with the run when
        it is made, and a submission whose id already has a run returns that run. The run's
        recovery id is written to `most_recent_run.txt` beside the script.

        Raises:
            InvalidInputError: For an unusable submission id, or a job this backend cannot run.
        """
        spec = spec_of(job)
        self._check_plan_workspace(job)
        found = self._submitted_before(submission_id)
        if found is None:
            found = self._submit_plan(self._plan_of(job), submission_id)
        write_most_recent_run(spec.recovery_file_folder, found)
        return found

    def submit_sweep(
        self, job: JobSpec | RunPlan, sweep: SweepSpec, *, submission_id: str | None = None
    ) -> RunRef:
        """Starts a hyperparameter sweep around a job; its trials are the run's children.

        With `submission_id`, idempotent as `submit` is: the sweep's run is recorded with it.
        The sweep's recovery id is written to `most_recent_run.txt` beside the script.
        """
        spec = spec_of(job)
        self._check_plan_workspace(job)
        found = self._submitted_before(submission_id)
        if found is None:
            self.check_sweep(sweep)
            found = self._submit_sweep_plan(self._plan_of(job), sweep, submission_id)
        write_most_recent_run(spec.recovery_file_folder, found)
        return found

    def submit_pipeline(
        self, pipeline: PipelineSpec, *, submission_id: str | None = None
    ) -> RunRef:
        """Starts a pipeline: one run whose steps are its child runs, started in their order.

        A step starts once the steps it depends on completed; an input an upstream step
        writes is the exact version that step registered. A failed step stops its
        dependants and the pipeline fails; canceling the pipeline cancels its steps. A step
        that allows reuse and whose code, settings and input versions equal an earlier
        completed run of it takes that run's outputs instead of running (`pipeline_steps`
        says so). With `submission_id`, idempotent as `submit` is: the pipeline's run is
        recorded with it.

        Raises:
            NotSupportedError: This backend does not run pipelines (yet); nothing was done.
        """
        raise self._no_pipelines("run pipelines")

    def pipeline_steps(self, ref: RunRef) -> list[StepRun]:
        """The steps of a pipeline run, in the pipeline's order, each with its run (if any).

        Raises:
            RunNotFoundError: No such run.
            InvalidInputError: The run is not a pipeline run.
            NotSupportedError: This backend does not run pipelines (yet).
        """
        raise self._no_pipelines("run pipelines")

    def submitted_pipeline(self, ref: RunRef) -> PipelineSpec:
        """The pipeline a pipeline run was submitted with (for `himl resubmit`).

        Raises:
            RunNotFoundError: No such run.
            InvalidInputError: The run is not a pipeline run.
            NotSupportedError: This backend does not run pipelines (yet).
        """
        raise self._no_pipelines("run pipelines")

    def run_inputs(self, ref: RunRef) -> list[ResolvedDataset]:
        """The dataset versions the run read (its input datasets), in the order it names them.

        Raises:
            RunNotFoundError: No such run.
            NotSupportedError: This backend does not record a run's inputs (yet).
        """
        raise self._no_pipelines("record a run's inputs")

    def publish_pipeline(
        self, pipeline: PipelineSpec, *, description: str = ""
    ) -> PublishedPipeline:
        """Publishes the pipeline under its name, as the next version (or finds it published).

        A pipeline equal to the latest version published under its name gives that version
        again: nothing new is published.

        Raises:
            NotSupportedError: This backend does not publish pipelines (yet); nothing was done.
        """
        raise self._no_pipelines("publish pipelines")

    def published_pipelines(self, name: str | None = None) -> list[PublishedPipeline]:
        """The published pipelines (only those under `name`, if given), oldest version first.

        Raises:
            NotSupportedError: This backend does not publish pipelines (yet).
        """
        raise self._no_pipelines("publish pipelines")

    def submit_published_pipeline(
        self, name: str, *, version: int | None = None, submission_id: str | None = None
    ) -> RunRef:
        """Submits a published pipeline (its latest version unless `version` is given).

        Raises:
            PipelineNotFoundError: Nothing is published under that name (or that version).
            NotSupportedError: This backend does not publish pipelines (yet).
        """
        raise self._no_pipelines("publish pipelines")

    def schedule_pipeline(self, schedule: PipelineSchedule) -> PipelineSchedule:
        """Creates the schedule in the workspace, or updates the one of its name.

        Returns it with the workspace's id.

        Raises:
            PipelineNotFoundError: Nothing is published under the schedule's pipeline name.
            NotSupportedError: This backend does not schedule pipelines (yet); nothing was done.
        """
        raise self._no_pipelines("schedule pipelines")

    def pipeline_schedules(self) -> list[PipelineSchedule]:
        """The workspace's pipeline schedules, by name.

        Raises:
            NotSupportedError: This backend does not schedule pipelines (yet).
        """
        raise self._no_pipelines("schedule pipelines")

    def remove_pipeline_schedule(self, name: str) -> None:
        """Removes the schedule of that name: it never fires again. Removing none is no error.

        Raises:
            NotSupportedError: This backend does not schedule pipelines (yet).
        """
        raise self._no_pipelines("schedule pipelines")

    def _no_pipelines(self, what: str) -> NotSupportedError:
        return NotSupportedError(
            f"the {self.name} backend does not {what} yet: nothing was done. Run the "
            "pipeline on the local backend, or chain its steps as jobs (submit one, wait, "
            "submit the next)"
        )

    def plan_steps(self, pipeline: PipelineSpec) -> dict[str, RunPlan]:
        """Each step's job planned without its inputs, in the pipeline's `order`, by name.

        Planning checks a step's job and selects its snapshot; nothing is written. It comes
        before the existing inputs are resolved (`resolve_existing_inputs`): resolving a
        dataset that is only a folder registers its version 1.

        Raises:
            HimlError: As `plan` raises it, for the first step that cannot run here.
        """
        experiment = pipeline.experiment_name()
        return {
            step.name: self.plan(
                dataclasses.replace(step.job, experiment=experiment, input_datasets=())
            )
            for step in pipeline.ordered_steps
        }

    def resolve_existing_inputs(
        self, pipeline: PipelineSpec
    ) -> dict[DatasetConfig, ResolvedDataset]:
        """Each input the pipeline's steps read from the workspace, resolved once.

        Two steps reading the latest of one dataset read one version.

        Raises:
            DatasetNotFoundError: An input no step writes does not exist.
        """
        return {config: self.resolve_dataset(config) for config in pipeline.existing_inputs}

    def _check_plan_workspace(self, job: JobSpec | RunPlan) -> None:
        """Refuses a plan another workspace made: its inputs are that workspace's versions.

        Raises:
            InvalidInputError: The plan was made by another backend or workspace.
        """
        if isinstance(job, RunPlan) and job.workspace not in ("", self.workspace_key()):
            raise InvalidInputError(
                f"this RunPlan was prepared by {job.workspace}, not by {self.workspace_key()}: "
                "its input versions and checks are that workspace's. Plan the job here "
                "(backend.plan(plan.spec)) or submit it to the backend that planned it"
            )

    def _plan_of(self, job: JobSpec | RunPlan) -> RunPlan:
        return job if isinstance(job, RunPlan) else self.plan(job)

    def _submitted_before(self, submission_id: str | None) -> RunRef | None:
        check_run_id_argument("submission_id", submission_id)
        return None if submission_id is None else self.find_submission(submission_id)

    # ---- built once: watching runs --------------------------------------------------------

    def watch(
        self,
        ref: RunRef,
        *,
        timeout_seconds: float | None = None,
        on_line: Callable[[str], None] | None = None,
        should_cancel: Callable[[], bool] | None = None,
        poll_seconds: float | None = None,
    ) -> RunState:
        """Waits for a run to end; returns its final state.

        Polls with a growing pause (up to `max_poll_seconds`) against its own deadline: a
        blocking wait could not be interrupted by an outer timeout.

        Args:
            ref: The run.
            timeout_seconds: The deadline (default: `default_timeout_seconds`).
            on_line: Called with each line of the driver log as it appears.
            should_cancel: Checked at each look; once it says True the run is canceled and
                watched to its end.
            poll_seconds: A fixed pause between looks instead of the growing one.

        Raises:
            InvalidInputError: For a timeout or pause that is not a usable number of seconds.
            JobTimeoutError: If the run has not ended by the deadline (a TimeoutError).
        """
        schedule = self._schedule(timeout_seconds, poll_seconds)
        log, canceled = LogTail(lambda offset: self.read_log(ref, offset)), False
        state: RunState | None = None
        for _ in polls(schedule):
            state = self.get_state(ref)
            if on_line is not None:
                for line in log.new_lines(final=state.is_terminal):
                    on_line(line)
            if state.is_terminal:
                return state
            if not canceled and should_cancel is not None and should_cancel():
                logger.warning("canceling run %s, as asked while watching it", ref)
                self.cancel(ref)
                canceled = True
        status = state.status if state is not None else "unknown"
        raise JobTimeoutError(f"run {ref} is still {status} after {schedule.timeout_seconds:g} s")

    def wait(
        self, ref: RunRef, *, timeout: float | None = None, poll: float | None = None
    ) -> RunState:
        """Waits until the run ends; returns its final state (`watch` without the log).

        Raises:
            JobTimeoutError: If it has not ended after `timeout` seconds (a TimeoutError).
        """
        return self.watch(ref, timeout_seconds=timeout, poll_seconds=poll)

    def iter_logs(
        self,
        ref: RunRef,
        *,
        follow: bool = False,
        timeout: float | None = None,
        poll: float | None = None,
    ) -> Iterator[str]:
        """Yields the lines of the run's driver log; with `follow`, until the run ends.

        Raises:
            JobTimeoutError: When following, if the run has not ended by the deadline.
        """
        schedule = self._schedule(timeout, poll, first=LOG_POLL_SECONDS)
        log = LogTail(lambda offset: self.read_log(ref, offset))
        for _ in polls(schedule):
            ended = not follow or self.get_state(ref).is_terminal
            yield from log.new_lines(final=ended)
            if ended:
                return
        raise JobTimeoutError(f"run {ref} is still going after {schedule.timeout_seconds:g} s")

    def _schedule(
        self, timeout: float | None, poll: float | None, *, first: float = FIRST_POLL_SECONDS
    ) -> PollSchedule:
        if poll is not None:
            first = poll
        return PollSchedule(
            timeout_seconds=self.default_timeout_seconds if timeout is None else timeout,
            first_pause=first,
            max_pause=self.max_poll_seconds if poll is None else poll,
        )

    # ---- built once: run files ------------------------------------------------------------

    def list_files(self, ref: RunRef, prefix: str = "") -> list[str]:
        """Names of the run's files (under `run_file_folders`) starting with `prefix`."""
        return list_in_run_folders(self.run_files(ref), prefix, self.run_file_folders)

    def download_files(
        self,
        ref: RunRef,
        prefix: str,
        destination: Path,
        *,
        validate_checksum: bool = False,
        show_progress: bool = False,
    ) -> TransferReport:
        """Downloads the run's files starting with `prefix`, keeping their names.

        `show_progress` shows the transfer engine's progress bar on stderr.

        Raises:
            InvalidInputError: If `prefix` lies outside the run's folders.
            RemoteFilesNotFoundError: If nothing matches.
        """
        return download_from_run_folders(
            self.run_files(ref),
            prefix,
            destination,
            validate_checksum=validate_checksum,
            folders=self.run_file_folders,
            show_progress=show_progress,
        )

    # ---- built once: datasets -------------------------------------------------------------

    def register_dataset(
        self, name: str, datastore: str, path: str, *, created_by_run: str | None = None
    ) -> ResolvedDataset:
        """Registers the files under `path` in a datastore as the next version of a dataset.

        Raises:
            InvalidInputError: If the name is unusable or the datastore holds no files there.
            DatastoreNotFoundError: No such datastore.
        """
        store = self.datastore(datastore)
        folder = folder_to_register(name, store, path)
        return self._register_dataset_version(name, store.name, folder, created_by_run)

    def local_dataset_folder(self, config: DatasetConfig, destination: Path | None = None) -> Path:
        """A dataset's files for a script that runs outside any job.

        `local_folder` wins when given (hi-ml's rule). Otherwise the dataset's version is
        brought into `destination`, else the config's `target_folder`, else a new temporary
        folder: the backend's own way when it has one (mounting), else downloaded through
        the transfer engine with checksums checked. A file of the version replaces a different
        one of the same name already there (a copy of another version); files the version
        does not have are left alone.

        Raises:
            DatasetNotFoundError: If the dataset does not exist.
        """
        if config.local_folder is not None:
            return config.local_folder
        resolved = self.resolve_dataset(config)
        if destination is None:
            destination = config.target_folder or Path(
                tempfile.mkdtemp(prefix=f"himl-{config.name}-")
            )
        if self._fetch_dataset(config, resolved, destination):
            return destination
        return download_dataset(self.datastore(resolved.datastore), resolved.path, destination)


def check_run_id_argument(name: str, value: object) -> None:
    """Refuses an id argument (a submission id, a parent run's id) that is not usable text.

    Raises:
        InvalidInputError: Unless `value` is None or non-empty printable UTF-8 text.
    """
    if value is None:
        return
    if not (
        isinstance(value, str)
        and value
        and "\0" not in value
        and value.isprintable()
        and _is_utf8(value)
    ):
        raise InvalidInputError(
            f"{name} must be a non-empty string of printable UTF-8 characters or None, not "
            f"{value!r}"
        )


def _is_utf8(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def spec_of(job: JobSpec | RunPlan) -> JobSpec:
    """The job spec of a job given as its spec or as the plan a backend prepared of it."""
    if isinstance(job, RunPlan):
        return job.spec
    if isinstance(job, JobSpec):
        return job
    raise InvalidInputError(f"a job is a JobSpec (or the RunPlan of one), not {job!r}")
