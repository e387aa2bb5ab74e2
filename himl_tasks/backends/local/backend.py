"""The embedded local backend: an AzureML-shaped workspace in a folder on this machine."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import importlib.util
import logging
import os
import re
import secrets
import shlex
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path, PurePath
from typing import Any

from himl_tasks.backends.base import Backend, check_run_id_argument, spec_of
from himl_tasks.backends.dataset_folders import link_dataset
from himl_tasks.backends.local.clusters import (
    DEFAULT_CLUSTER,
    DRIVER_CLUSTER,
    MAX_CONCURRENT_RUNS,
    Preemption,
    check_cluster_settings,
)
from himl_tasks.backends.local.launch_plan import LaunchInput, LaunchOutput, LaunchPlan
from himl_tasks.backends.local.launcher import (
    PACKAGE_PARENT,
    cluster_limit,
    default_cluster_limit,
    reap_supervisors,
    start_queued_runs,
    start_supervisor,
    this_launcher,
)
from himl_tasks.backends.local.pipeline_deployments import PipelineDeployments
from himl_tasks.backends.local.pipeline_plan import (
    PIPELINE_PLAN_FILE,
    STEP_SNAPSHOTS_FOLDER,
    PipelinePlan,
    PlannedStep,
)
from himl_tasks.backends.local.published_pipelines import PublishedPipelines
from himl_tasks.backends.local.registry import Registry, RunRow
from himl_tasks.backends.local.run_page import rewrite_run_page, run_page_url
from himl_tasks.backends.local.step_reuse import outputs_intact, step_identity
from himl_tasks.backends.local.submitting_marks import (
    abandoned_run_folders,
    mark_submitting,
    unmark_submitting,
)
from himl_tasks.backends.local.supervisor import DRIVER_LOG
from himl_tasks.backends.local.sweep_plan import (
    SWEEP_PLAN_FILE,
    TRIAL_SNAPSHOT_FOLDER,
    SweepPlan,
)
from himl_tasks.backends.local.workspace_config import (
    DEFAULT_DATASTORE,
    LocalWorkspaceConfig,
    workspace_root,
)
from himl_tasks.backends.prefect_api import find_prefect_api
from himl_tasks.backends.prefect_rest import PrefectRest
from himl_tasks.checkpoints import DEFAULT_CHECKPOINT_FOLDER, latest_recovery_checkpoint
from himl_tasks.datasets import DatasetConfig, ResolvedDataset
from himl_tasks.errors import (
    ComputeNotFoundError,
    ConfigurationError,
    DatasetNotFoundError,
    InvalidInputError,
    RunNotFoundError,
)
from himl_tasks.job_spec import JobSpec
from himl_tasks.job_variables import RESUME_FROM
from himl_tasks.pipeline_runs import (
    PipelineSchedule,
    PublishedPipeline,
    StepRun,
    checked_version,
)
from himl_tasks.pipelines import PipelineSpec
from himl_tasks.run_plan import RunPlan
from himl_tasks.runs import (
    FailureKind,
    ListedRun,
    Metric,
    RunRef,
    RunState,
    RunStatus,
    parse_recovery_id,
    write_most_recent_run,
)
from himl_tasks.secret_reference import SecretReference, plain_values, secret_references
from himl_tasks.snapshot import Snapshot
from himl_tasks.storage import Datastore, LocalDatastore
from himl_tasks.sweeps import SweepSpec, sample_trials

logger = logging.getLogger(__name__)

# The tag naming a pipeline's step on the step's run.
PIPELINE_STEP_TAG = "pipeline_step"
# The tag naming the pipeline on a pipeline's run.
PIPELINE_NAME_TAG = "pipeline"
# The module a pipeline's run runs.
PIPELINE_DRIVER = "himl_tasks.backends.local.pipeline_driver"
# The tag, on a step's run that did not run, naming the earlier run whose outputs it took.
REUSED_FROM_TAG = "reused_from"
# The tags naming the published pipeline and version a pipeline run was submitted from.
PUBLISHED_PIPELINE_TAG = "published_pipeline"
PUBLISHED_VERSION_TAG = "published_version"
# The spec each run was submitted with, in its folder (for `submitted_spec`).
SUBMITTED_SPEC_FILE = "job_spec.json"


class LocalBackend(Backend):
    """The embedded workspace: runs are subprocesses, datasets are versions in a registry.

    Beyond the `Backend` protocol, this backend alone offers: `create_compute_cluster` and
    `compute_clusters` (a cluster is a limit on runs at once, with optional preemption),
    `register_datastore` (the settings of a `datastores.toml` entry, not AzureML's
    arguments), `status_history`, `attempts` and `dataset_versions` (what its registry
    keeps), `submit_step` (what a pipeline's driver calls for each step: run it, or record
    an earlier run standing in), and two keyword arguments: `submit(parent_run_id=...)` and
    `submit_sweep(seed=...)`.

    Args:
        root: The workspace folder (default: `$HIML_HOME`, else `./.himl`).
        datastores_file: The datastores file this object reads instead of
            `<root>/datastores.toml` (runs it submits read the workspace's own).
    """

    name = "local"
    max_poll_seconds = 0.25  # a state check is a local SQLite read
    default_timeout_seconds = 3600.0

    def __init__(
        self, root: str | PurePath | None = None, *, datastores_file: str | PurePath | None = None
    ) -> None:
        self.root = workspace_root(root).absolute()
        self.registry = Registry(self.root)
        self.workspace = LocalWorkspaceConfig.load(self.root, config_path=datastores_file)

    def __repr__(self) -> str:
        return f"LocalBackend(root={str(self.root)!r})"

    def workspace_key(self) -> str:
        """The workspace folder: every backend object on it shares plans."""
        return f"local:{self.root.resolve()}"

    def workspace_description(self) -> str:
        """The workspace folder, as messages name it."""
        return f"the local workspace at {self.root}"

    # ---- compute --------------------------------------------------------------------------

    def create_compute_cluster(
        self, name: str, *, max_concurrent_runs: int = 1, preemption: Preemption | None = None
    ) -> None:
        """Creates (or changes) a cluster: a name with a limit on runs at once.

        Args:
            name: The cluster's name, as jobs give it in `JobSpec.compute`.
            max_concurrent_runs: Runs beyond this wait in Queued until a slot frees.
            preemption: Preempt low-priority runs on this cluster (see `Preemption`).
        """
        check_cluster_settings(name, max_concurrent_runs, preemption)
        settings = dataclasses.asdict(preemption) if preemption is not None else None
        self.registry.put_cluster(name, max_concurrent_runs, settings)

    def check_compute(self, name: str) -> None:
        """Raises ComputeNotFoundError unless `name` is a cluster ("" is the default one)."""
        self._cluster(name or DEFAULT_CLUSTER)

    def compute_clusters(self) -> dict[str, int]:
        """Returns {cluster name: max concurrent runs}, the default cluster included."""
        clusters = {DEFAULT_CLUSTER: default_cluster_limit()}
        clusters.update({n: limit for n, (limit, _) in self.registry.clusters().items()})
        return clusters

    # ---- datastores ---------------------------------------------------------------------

    def register_datastore(self, name: str, **settings: str | bool) -> Datastore:
        """Registers (or replaces) a named datastore in the workspace; returns it.

        Settings are those of a `datastores.toml` entry: `path` (a folder, relative to the
        workspace) or `account_url` + `container` + one credential given by the name of the
        environment variable holding it (`connection_string_env`, `sas_token_env`,
        `account_name` + `account_key_env`) or `use_azure_identity=True`. Secrets themselves
        are never stored.

        Raises:
            ConfigurationError: If the settings are incomplete.
            InvalidInputError: If the name is unusable.
        """
        if not re.fullmatch(r"[A-Za-z0-9_]{1,255}", name):
            raise InvalidInputError(
                f"'{name}' is not a usable datastore name: use letters, digits and '_'"
            )
        self.workspace.check_entry(name, dict(settings))
        self.registry.put_datastore(name, dict(settings))
        return self.datastore(name)

    # ---- submission -----------------------------------------------------------------------

    def check_spec(self, spec: JobSpec) -> None:
        """Refuses a secret reference whose variable this process does not hold.

        Raises:
            ConfigurationError: A secret reference names a variable that is not set.
        """
        for variable in secret_references(spec.environment_variables).values():
            SecretReference(variable).resolve()

    def submit(
        self,
        job: JobSpec | RunPlan,
        *,
        submission_id: str | None = None,
        parent_run_id: str | None = None,
    ) -> RunRef:
        """Checks the job, copies its snapshot, and queues it; returns at once.

        A `JobSpec` is planned first (`plan`); a `RunPlan` is submitted as it was prepared,
        its snapshot and input versions unchanged. The run is recorded Queued with its launch
        plan; it gets a supervisor process only when its cluster has a free slot (at once, or
        when an earlier run ends). `submission_id` makes submitting idempotent: it is recorded
        with the run in the same transaction (a unique column), and a submission whose id has
        a run returns that run instead of making another one, whatever became of it.
        `parent_run_id` makes the run a child of another (a sweep's trial).

        Raises:
            InvalidInputError: The script is missing or outside the snapshot, or the module
                cannot be found.
            SnapshotTooLargeError: The snapshot is over AzureML's limits.
            ComputeNotFoundError: The cluster does not exist.
            DatasetNotFoundError: An input dataset or version does not exist.
            DatastoreNotFoundError: A dataset names an unknown datastore.
            ConfigurationError: A secret reference names a variable that is not set.
        """
        if parent_run_id is None:
            return super().submit(job, submission_id=submission_id)
        self._check_plan_workspace(job)
        check_run_id_argument("submission_id", submission_id)
        check_run_id_argument("parent_run_id", parent_run_id)
        self._row_of(parent_run_id)  # RunNotFoundError before anything is written
        found = self._submitted_before(submission_id)
        if found is None:
            found = self._submit_plan(self._plan_of(job), submission_id, parent_run_id)
        write_most_recent_run(spec_of(job).recovery_file_folder, found)
        return found

    def _submit_plan(
        self, plan: RunPlan, submission_id: str | None, parent_run_id: str | None = None
    ) -> RunRef:
        """Records the prepared job as a Queued run and starts it when its cluster has room."""
        ref = self._record_run(plan, submission_id, parent_run_id)
        assert ref is not None  # only a run standing in for another is ever refused
        return ref

    def _record_run(
        self,
        plan: RunPlan,
        submission_id: str | None,
        parent_run_id: str | None,
        *,
        step_identity: str | None = None,
        reused_from: tuple[RunRow, int] | None = None,
    ) -> RunRef | None:
        """Records a run of the prepared job: Queued, or Completed at once standing in.

        With `reused_from` (an earlier run, and how many dataset versions it registered) the
        run is a pipeline step that takes that run's outputs: it gets a folder holding its job
        spec and a log line saying so, and no process. It is recorded only if the earlier run
        is still Completed with those versions (checked in the recording transaction);
        otherwise nothing is left and None is returned.
        """
        spec = plan.spec
        launch_plan = self._launch_plan(plan)
        compute = spec.compute or DEFAULT_CLUSTER
        resumed = self._row(self.get_run_ref(spec.resume_from)) if spec.resume_from else None
        run_id = f"{plan.experiment}_{int(time.time())}_{secrets.token_hex(4)}"
        run_dir = self.root / "runs" / run_id
        tags = {"commandline": shlex.join(sys.argv), **spec.tags}
        if reused_from is not None:
            tags[REUSED_FROM_TAG] = self._ref(reused_from[0]).recovery_id
        self._remove_abandoned_run_folders()
        run_dir.mkdir(parents=True)
        # Says who is making this folder until its run is recorded: a submitter killed before
        # then leaves a folder that the next submission removes.
        mark_submitting(run_dir)
        try:
            if reused_from is None:
                plan.snapshot.copy_to(run_dir / "snapshot")
            else:
                log = run_dir / "snapshot" / DRIVER_LOG
                log.parent.mkdir(parents=True)
                log.write_text(
                    f"not run: run {tags[REUSED_FROM_TAG]} of the same step (the same job "
                    "settings, snapshot and input versions) completed; its outputs are this "
                    "step's\n",
                    encoding="utf-8",
                )
            (run_dir / SUBMITTED_SPEC_FILE).write_text(spec.to_json(), encoding="utf-8")
            if resumed is not None:
                self._restore_recovery_checkpoint(resumed.run_dir, run_dir / "snapshot")
            holder = self.registry.insert_run(
                run_id=run_id,
                parent_run_id=parent_run_id,
                experiment=plan.experiment,
                display_name=spec.display_name or run_id,
                compute=compute,
                priority=spec.priority.value,
                tags=tags,
                parameters=_parameters(spec.args),
                launch_plan=launch_plan,
                run_dir=run_dir,
                submission_id=submission_id,
                submitter=this_launcher(),
                step_identity=step_identity,
                reused_from=None
                if reused_from is None
                else (reused_from[0].run_id, reused_from[1]),
            )
        except BaseException:
            shutil.rmtree(run_dir, ignore_errors=True)
            raise
        unmark_submitting(run_dir)
        if holder != run_id:  # the same submission, made at the same moment elsewhere, won
            shutil.rmtree(run_dir, ignore_errors=True)
            return None if holder is None else self._ref(self._look_after(self._row_of(holder)))
        # The run's link opens a page from the start, even while it waits in the queue.
        rewrite_run_page(self.registry, run_id, driver_log=DRIVER_LOG)
        if reused_from is not None:
            return self._ref(self._row_of(run_id))
        parent = self.registry.get_run(parent_run_id) if parent_run_id else None
        if parent is not None and (parent.cancel_requested or parent.status.is_terminal):
            # The parent was canceled while this child was being submitted: the cancel's
            # cascade may have listed the children before this one was recorded.
            self.cancel(self._ref(self._row_of(run_id)))
        start_queued_runs(self.registry, compute, self._launch_secrets())
        return self._ref(self._row_of(run_id))

    def _launch_plan(self, plan: RunPlan) -> LaunchPlan:
        """What the run's supervisor reads: the run plan, made concrete for this machine."""
        spec = plan.spec
        _, settings = self._cluster(spec.compute or DEFAULT_CLUSTER)
        inputs = tuple(
            LaunchInput(
                name=resolved.name,
                version=resolved.version,
                datastore=resolved.datastore,
                path=resolved.path,
                use_mounting=bool(config.use_mounting),
                target_folder=config.target_folder,
            )
            for config, resolved in zip(spec.input_datasets, plan.inputs, strict=True)
        )
        outputs = tuple(
            LaunchOutput(config.name, self.datastore(config.datastore).name)
            for config in spec.output_datasets
        )
        return LaunchPlan(
            command=tuple(self._command(spec, plan.snapshot)),
            environment_variables={
                **plain_values(spec.environment_variables),
                **({RESUME_FROM: spec.resume_from} if spec.resume_from else {}),
            },
            # Names only: the values are read from the launcher's secrets at launch.
            secret_variables=secret_references(spec.environment_variables),
            extra_python_path=(str(PACKAGE_PARENT),),
            num_nodes=spec.num_nodes,
            processes_per_node=spec.processes_per_node,
            priority=spec.priority,
            max_run_seconds=spec.max_run_duration,
            preemption=Preemption(**settings) if settings else None,
            inputs=inputs,
            outputs=outputs,
            resume_from=spec.resume_from,
        )

    def folders_never_in_snapshots(self, snapshot_root: Path) -> list[str]:
        """The workspace itself, when it is inside the snapshot root.

        `./.himl` is left out by name; a `$HIML_HOME` in the project (`./workspace`) was
        copied into each run's snapshot with the registry and every earlier run's snapshot,
        each run's copy holding the ones before.
        """
        for root, workspace in (
            (snapshot_root.absolute(), self.root),
            (snapshot_root.resolve(), self.root.resolve()),
        ):
            if workspace != root and workspace.is_relative_to(root):
                return [workspace.relative_to(root).as_posix()]
        return []

    def check_snapshot(self, spec: JobSpec, snapshot: Snapshot) -> None:
        """Refuses a job whose command cannot be made, or whose resumed run does not exist.

        Raises:
            InvalidInputError: The script is missing or outside the snapshot, the module
                cannot be found, or the interpreter is not executable.
            RunNotFoundError: `resume_from` names no run of the workspace.
        """
        self._command(spec, snapshot)
        if spec.resume_from:
            self.get_run_ref(spec.resume_from)

    def _remove_abandoned_run_folders(self) -> None:
        """Removes the folders of runs whose submitter died before recording them."""
        for run_dir in abandoned_run_folders(self.root / "runs"):
            if self.registry.get_run(run_dir.name) is not None:
                unmark_submitting(run_dir)  # recorded: only the mark was left
            else:
                shutil.rmtree(run_dir, ignore_errors=True)

    def find_submission(self, submission_id: str) -> RunRef | None:
        """The run submitted under `submission_id`, or None if there is none."""
        row = self.registry.find_submission(submission_id)
        return self._ref(self._look_after(row)) if row is not None else None

    def _launch_secrets(self) -> dict[str, str]:
        """The secrets this process hands the supervisors it starts.

        They are the values, in its environment, of the variables the workspace's datastores
        name and those the secret references of the runs still to start name. A supervisor
        hands what it was given on to the supervisors it starts in turn.
        """
        names = {*self.workspace.secret_variables(), *self.registry.waiting_secret_variables()}
        return {name: os.environ[name] for name in names if name in os.environ}

    def submit_sweep(
        self,
        job: JobSpec | RunPlan,
        sweep: SweepSpec,
        *,
        submission_id: str | None = None,
        seed: int = 0,
    ) -> RunRef:
        """Runs a sweep around a job: a parent run whose trials are its child runs.

        The parent is a small driver process (`himl_tasks.backends.local.sweep_driver`) on the
        drivers' cluster (`DRIVER_CLUSTER`, no limit: a driver waiting for its trials never
        holds a slot they need); it submits each trial (the job with `--<parameter> <value>`
        appended) to the job's cluster, at most `max_concurrent_runs` at once, and logs the
        best value of the primary metric. Every trial reads the input versions the job was
        planned with and runs the snapshot selected at submission (a copy travels with the
        parent run).
        Grid and random sampling only; an early termination policy is not applied locally
        (every trial runs to its end).

        `submission_id` makes it idempotent, as in `submit`: it names the parent run. The
        parent's recovery id is written to `most_recent_run.txt` beside the script.

        Raises:
            InvalidInputError: For bayesian sampling, or a plan another workspace made.
        """
        self._check_plan_workspace(job)
        found = self._submitted_before(submission_id)
        if found is None:
            self.check_sweep(sweep)
            found = self._start_sweep(self._plan_of(job), sweep, submission_id, seed)
        write_most_recent_run(spec_of(job).recovery_file_folder, found)
        return found

    def check_sweep(self, sweep: SweepSpec) -> None:
        """Raises for bayesian sampling: the local backend samples grids and at random."""
        sample_trials(sweep)

    def _submit_sweep_plan(
        self, plan: RunPlan, sweep: SweepSpec, submission_id: str | None
    ) -> RunRef:
        return self._start_sweep(plan, sweep, submission_id, seed=0)

    def _start_sweep(
        self, plan: RunPlan, sweep: SweepSpec, submission_id: str | None, seed: int
    ) -> RunRef:
        trials = sample_trials(sweep, seed=seed)
        if sweep.early_termination is not None:
            logger.warning("the local backend runs every trial: early termination is ignored")
        spec = plan.spec
        trial_spec = dataclasses.replace(
            spec,
            experiment=plan.experiment,
            input_datasets=tuple(
                dataclasses.replace(config, version=resolved.version)
                for config, resolved in zip(spec.input_datasets, plan.inputs, strict=True)
            ),
        )
        sweep_plan = SweepPlan(
            trial_spec=trial_spec,
            trials=tuple(trials),
            primary_metric=sweep.primary_metric,
            goal=sweep.goal,
            max_concurrent_runs=sweep.max_concurrent_runs,
        )
        with tempfile.TemporaryDirectory(prefix="himl-sweep-") as folder:
            (Path(folder) / SWEEP_PLAN_FILE).write_text(sweep_plan.to_json(), encoding="utf-8")
            # The trials run the files selected now, not whatever the project holds later.
            plan.snapshot.copy_to(Path(folder) / TRIAL_SNAPSHOT_FOLDER)
            driver = JobSpec(
                module="himl_tasks.backends.local.sweep_driver",
                args=[SWEEP_PLAN_FILE],
                snapshot_root=folder,
                compute=DRIVER_CLUSTER,
                experiment=plan.experiment,
                display_name=f"sweep of {plan.experiment} ({len(trials)} trials)",
                tags={"sweep": "true"},
                # The driver submits the trials, which read these from their submitter: it
                # gets them as its own secrets, under their own names.
                environment_variables={
                    name: SecretReference(name)
                    for name in secret_references(spec.environment_variables).values()
                },
            )
            return self.submit(driver, submission_id=submission_id)

    def submit_pipeline(
        self, pipeline: PipelineSpec, *, submission_id: str | None = None
    ) -> RunRef:
        """Runs a pipeline: a run whose steps are its child runs, each started in its turn.

        The pipeline run is a small driver process (`himl_tasks.backends.local.pipeline_driver`)
        on the drivers' cluster (`DRIVER_CLUSTER`, no limit: a driver waiting for its steps
        never holds a slot they need). It starts a step once every step it depends on
        completed, on the step's own cluster; an input that an upstream step writes is the
        exact version that step registered. Once a step fails or is canceled, no further step
        starts: its dependants are never started (they get no run), running steps go on to
        their end, and the pipeline ends Failed. Canceling the pipeline cancels its running steps.

        A step that allows reuse and whose identity (its job's settings, its snapshot's
        content and the exact versions it reads; see `step_reuse`) equals that of an earlier
        Completed step run in this workspace, in any pipeline, does not run: its child run is
        recorded Completed at once, tagged `reused_from` with that run, and its outputs are
        that run's versions (no new version is made). Its dependants then read those
        versions, so an unchanged pipeline submitted again reuses every step.

        Every step is checked before anything is written, then the inputs no step writes are
        resolved (a folder becomes version 1, as `submit` does) and every step reads those
        versions. Each step runs the snapshot selected now (a copy travels with the pipeline
        run). `submission_id` makes it idempotent, as in `submit`: it names the pipeline run.

        Raises:
            InvalidInputError: Not a `PipelineSpec`, an unusable submission id, or a step's
                job that cannot run here.
            ComputeNotFoundError: A step names a cluster that does not exist.
            DatastoreNotFoundError: A step's output names an unknown datastore.
            DatasetNotFoundError: An input no step writes does not exist.
            ConfigurationError: A secret reference names a variable that is not set.
        """
        if not isinstance(pipeline, PipelineSpec):
            raise InvalidInputError(f"a pipeline is a PipelineSpec, not {pipeline!r}")
        found = self._submitted_before(submission_id)
        if found is not None:
            return found
        experiment = pipeline.experiment_name()
        steps = pipeline.ordered_steps
        plans = list(self.plan_steps(pipeline).values())
        versions = {
            config: resolved.version
            for config, resolved in self.resolve_existing_inputs(pipeline).items()
        }
        with tempfile.TemporaryDirectory(prefix="himl-pipeline-") as folder:
            planned = []
            for index, (step, plan) in enumerate(zip(steps, plans, strict=True)):
                # The steps run the files selected now, not whatever the project holds later;
                # a step is known by the files it runs: those copied, read from the copy.
                copy = Path(folder) / STEP_SNAPSHOTS_FOLDER / str(index)
                plan.snapshot.copy_to(copy)
                copied = dataclasses.replace(plan.snapshot, root=copy)
                inputs = tuple(
                    dataclasses.replace(config, version=versions[config])
                    if config in versions
                    else config
                    for config in step.job.input_datasets
                )
                spec = dataclasses.replace(
                    plan.spec,
                    input_datasets=inputs,
                    display_name=plan.spec.display_name or step.name,
                    tags={**plan.spec.tags, PIPELINE_STEP_TAG: step.name},
                )
                planned.append(
                    PlannedStep(
                        step.name,
                        spec,
                        upstream=pipeline.upstream(step.name),
                        snapshot_folder=str(index),
                        snapshot_digest=copied.content_digest(),
                        allow_reuse=step.allow_reuse,
                    )
                )
            pipeline_plan = PipelinePlan(pipeline=pipeline, steps=tuple(planned))
            (Path(folder) / PIPELINE_PLAN_FILE).write_text(
                pipeline_plan.to_json(), encoding="utf-8"
            )
            driver = JobSpec(
                module=PIPELINE_DRIVER,
                args=[PIPELINE_PLAN_FILE],
                snapshot_root=folder,
                compute=DRIVER_CLUSTER,
                experiment=experiment,
                display_name=pipeline.display_name
                or f"pipeline {pipeline.name} ({len(planned)} steps)",
                tags={**pipeline.tags, PIPELINE_NAME_TAG: pipeline.name},
                # The driver submits the steps, which read these from their submitter.
                environment_variables={
                    name: SecretReference(name)
                    for planned_step in planned
                    for name in secret_references(planned_step.spec.environment_variables).values()
                },
            )
            return self.submit(driver, submission_id=submission_id)

    def submit_step(
        self,
        step: PlannedStep,
        spec: JobSpec,
        *,
        pipeline_run_id: str,
    ) -> RunRef:
        """Starts a pipeline's step as a child run, or records an earlier run standing in.

        What the pipeline's driver calls for each step, once its upstream steps completed:
        `spec` is the step's job with every input pinned to the version it reads. Idempotent:
        the step's run is recorded under a submission id made of the pipeline run and the
        step's name. When the step allows reuse, the earlier runs of its identity
        (`step_reuse`) are tried, newest first; the first still standing in (Completed, its
        output versions in the registry and their files in their datastore) gives the step a
        Completed child run tagged `reused_from`. Otherwise the step runs, its run recorded
        with its identity.

        Raises:
            HimlError: The step's job cannot be planned (e.g. its cluster was removed).
        """
        submission_id = f"pipeline {pipeline_run_id} step {step.name}"
        found = self.find_submission(submission_id)
        if found is not None:
            return found
        plan = self.plan(spec)
        identity = step_identity(plan, step.snapshot_digest)
        expected = tuple(config.name for config in spec.output_datasets)
        for earlier in self.registry.reusable_runs(identity) if step.allow_reuse else []:
            outputs = self._recorded_outputs(earlier.run_id)
            if not outputs_intact(outputs, expected, self.datastore):
                continue
            reused = self._record_run(
                plan,
                submission_id,
                pipeline_run_id,
                step_identity=identity,
                reused_from=(earlier, len(outputs)),
            )
            if reused is not None:
                return reused
        ref = self._record_run(plan, submission_id, pipeline_run_id, step_identity=identity)
        assert ref is not None  # only a run standing in for another is ever refused
        return ref

    def pipeline_steps(self, ref: RunRef) -> list[StepRun]:
        """The steps of a pipeline run, in the pipeline's order, each with its run (if any).

        Raises:
            RunNotFoundError: No such run.
            InvalidInputError: The run is not a pipeline run.
        """
        pipeline = self.submitted_pipeline(ref)
        runs: dict[str, RunRow] = {}
        for child in self.registry.runs(parent_run_id=ref.run_id):
            runs.setdefault(child.tags.get(PIPELINE_STEP_TAG, ""), child)
        steps = []
        for name in pipeline.order:
            row = runs.get(name)
            earlier = None if row is None else row.reused_from
            steps.append(
                StepRun(
                    name,
                    None if row is None else self._ref(row),
                    None if earlier is None else self._ref(self._row_of(earlier)),
                )
            )
        return steps

    def submitted_pipeline(self, ref: RunRef) -> PipelineSpec:
        """The pipeline a pipeline run was submitted with, kept in the run's folder.

        Raises:
            RunNotFoundError: No such run.
            InvalidInputError: The run is not a pipeline run, or its plan cannot be read.
        """
        row = self._row(ref)
        if PIPELINE_DRIVER not in row.launch_plan.command:
            raise InvalidInputError(
                f"run '{ref}' is not a pipeline run: give the run that submit_pipeline "
                "returned (a step's run is one of its child runs)"
            )
        path = row.run_dir / "snapshot" / PIPELINE_PLAN_FILE
        try:
            return PipelinePlan.from_json(path.read_text(encoding="utf-8")).pipeline
        except (OSError, UnicodeDecodeError, ConfigurationError) as error:
            raise InvalidInputError(
                f"pipeline run '{ref}': its plan {path} cannot be read ({error}); it was "
                "submitted by another version of himl-tasks, or its folder was changed"
            ) from None

    # ---- published pipelines and schedules ------------------------------------------------

    def publish_pipeline(
        self, pipeline: PipelineSpec, *, description: str = ""
    ) -> PublishedPipeline:
        """Publishes the pipeline in the workspace, with a Prefect deployment that runs it.

        Each step is checked as `submit_pipeline` checks it and its snapshot is kept with the
        version (`published/<name>/<version>/` in the workspace), so the version runs
        without its project. A pipeline whose settings, jobs and snapshots' content equal
        the latest version's gives that version again. The endpoint is the deployment
        `run-published-pipeline/<name>@<workspace digest>` of the work pool `himl-process`:
        `prefect deployment run <endpoint>` submits the latest version, once a process
        worker of that pool runs (`prefect worker start --pool himl-process`).

        Raises:
            InvalidInputError: Not a `PipelineSpec`, or a step's job that cannot run here.
            ConfigurationError: No Prefect API is configured or it does not answer; nothing
                was published.
            ComputeNotFoundError: A step names a cluster that does not exist.
            DatastoreNotFoundError: A step's output names an unknown datastore.
        """
        if not isinstance(pipeline, PipelineSpec):
            raise InvalidInputError(f"a pipeline is a PipelineSpec, not {pipeline!r}")
        if not isinstance(description, str):
            raise InvalidInputError(f"description must be text, not {description!r}")
        snapshots = {name: plan.snapshot for name, plan in self.plan_steps(pipeline).items()}
        with self._deployments(f"cannot publish pipeline '{pipeline.name}'") as deployments:
            # The API answers before anything is written; a deployment found is kept.
            deployment = deployments.find(pipeline.name)
            published = self._published.publish(
                pipeline,
                snapshots,
                description=description,
                endpoint=deployments.endpoint(pipeline.name),
            )
            if deployment is None:
                deployments.ensure(pipeline.name)
        return published

    def published_pipelines(self, name: str | None = None) -> list[PublishedPipeline]:
        """The workspace's published pipelines (only those under `name`, if given).

        By name, each name's versions oldest first.
        """
        published = self._published
        versions = (
            published.every_version().values() if name is None else [published.versions(name)]
        )
        return [version.published for each in versions for version in each]

    def submit_published_pipeline(
        self, name: str, *, version: int | None = None, submission_id: str | None = None
    ) -> RunRef:
        """Submits a published pipeline's version (the latest unless `version` is given).

        It runs as `submit_pipeline` runs a pipeline, from the snapshots kept with the
        version; its run is tagged with the published name and version. `submission_id`
        makes it idempotent, as in `submit_pipeline`.

        Raises:
            PipelineNotFoundError: Nothing is published under that name, or not that
                version; the message lists what is. Nothing was submitted.
            InvalidInputError: A version that is not a whole number of 1 or more.
        """
        found = self._published.version(name, checked_version(version))
        pipeline = found.pipeline()
        tagged = dataclasses.replace(
            pipeline,
            display_name=pipeline.display_name
            or f"pipeline {pipeline.name} version {found.published.version}",
            tags={
                **pipeline.tags,
                PUBLISHED_PIPELINE_TAG: found.published.name,
                PUBLISHED_VERSION_TAG: str(found.published.version),
            },
        )
        return self.submit_pipeline(tagged, submission_id=submission_id)

    def schedule_pipeline(self, schedule: PipelineSchedule) -> PipelineSchedule:
        """Schedules a published pipeline: a schedule of its Prefect deployment.

        The schedule is the deployment's schedule whose slug is the schedule's name; one of
        that name is updated (moved, for another pipeline). Each firing is a flow run of the
        deployment that submits the pipeline's latest version, run by a process worker of
        the work pool `himl-process`.

        Raises:
            PipelineNotFoundError: Nothing is published under the schedule's pipeline name;
                nothing was changed.
            InvalidInputError: Not a `PipelineSchedule`.
            ConfigurationError: No Prefect API is configured or it does not answer.
        """
        if not isinstance(schedule, PipelineSchedule):
            raise InvalidInputError(f"a schedule is a PipelineSchedule, not {schedule!r}")
        self._published.version(schedule.pipeline, None)
        with self._deployments(f"cannot schedule pipeline '{schedule.pipeline}'") as deployments:
            return deployments.put_schedule(schedule)

    def pipeline_schedules(self) -> list[PipelineSchedule]:
        """The workspace's pipeline schedules (its deployments' schedules), by name.

        Raises:
            ConfigurationError: No Prefect API is configured or it does not answer.
        """
        with self._deployments("cannot list the pipeline schedules") as deployments:
            return deployments.schedules()

    def remove_pipeline_schedule(self, name: str) -> None:
        """Removes the schedule of that name from its deployment; none is no error.

        Raises:
            ConfigurationError: No Prefect API is configured or it does not answer.
        """
        with self._deployments(f"cannot remove schedule '{name}'") as deployments:
            deployments.remove_schedule(name)

    @property
    def _published(self) -> PublishedPipelines:
        return PublishedPipelines(self.root)

    @contextlib.contextmanager
    def _deployments(self, doing: str) -> Iterator[PipelineDeployments]:
        """The Prefect deployments of this workspace's pipelines, on the configured API.

        Args:
            doing: What the requests are for, as an error message starts.

        Raises:
            ConfigurationError: No Prefect API is configured (the message says how to).
        """
        with PrefectRest(find_prefect_api(), doing) as rest:
            yield PipelineDeployments(rest, self.root)

    def _command(self, spec: JobSpec, snapshot: Snapshot) -> list[str]:
        python = spec.python_executable or sys.executable
        if shutil.which(python) is None:
            raise InvalidInputError(
                f"python_executable {python!r} is not an executable file on this machine: give "
                "the path of a Python interpreter, or leave it empty for the current one"
            )
        script = spec.entry_script
        if script is None:
            module = str(spec.module)
            if not _module_in_snapshot(spec.snapshot_root, module) and not _importable(module):
                raise InvalidInputError(
                    f"module '{module}' is neither in the snapshot {spec.snapshot_root} nor "
                    "installed"
                )
            return [python, "-m", module, *spec.args]
        return [python, snapshot.entry_script(script), *spec.args]

    def _cluster(self, compute: str) -> tuple[int, dict[str, Any] | None]:
        if compute == DEFAULT_CLUSTER:
            return default_cluster_limit(), None  # not in the registry: no read needed
        if compute == DRIVER_CLUSTER:
            return MAX_CONCURRENT_RUNS, None
        clusters = self.registry.clusters()
        if compute not in clusters:
            known = ", ".join(sorted([DEFAULT_CLUSTER, *clusters]))
            raise ComputeNotFoundError(
                f"no compute cluster named '{compute}' in the workspace at {self.root}; known "
                f"clusters: {known}. Create it with LocalBackend.create_compute_cluster."
            )
        return clusters[compute]

    def _restore_recovery_checkpoint(self, resumed_run_dir: Path, work_dir: Path) -> None:
        """Copies the resumed run's latest recovery checkpoint into the new run's outputs.

        It lands in `outputs/checkpoints/`, where the job looks first. That checkpoint is all
        a resubmitted job gets, as on AzureML, where a new run starts with an empty `outputs/`
        and fetches it from the lost run (`find_latest_recovery_checkpoint` in the job); only a
        run the platform restarts itself keeps its whole `outputs/`.
        """
        previous = resumed_run_dir / "snapshot"
        folder = DEFAULT_CHECKPOINT_FOLDER
        latest = latest_recovery_checkpoint(previous / folder)
        if latest is not None:
            (work_dir / folder).mkdir(parents=True, exist_ok=True)
            shutil.copy2(latest, work_dir / folder / latest.name)

    # ---- runs -----------------------------------------------------------------------------

    def get_run_ref(self, recovery_id: str) -> RunRef:
        """Finds a run by `experiment:run_id` or bare `run_id`.

        Raises:
            RunNotFoundError: If there is no such run (or it is in another experiment).
        """
        experiment, run_id = parse_recovery_id(recovery_id)
        row = self.registry.get_run(run_id)
        if row is None or (experiment and row.experiment != experiment):
            raise RunNotFoundError(f"no run '{recovery_id}' in the workspace at {self.root}")
        return self._ref(row)

    def list_runs(self, experiment: str | None = None) -> list[ListedRun]:
        """The registry's runs (children included), oldest first: all, or one experiment's.

        As `get_state` does, listing looks after each unfinished run (a run whose supervisor
        vanished is listed Failed).
        """
        listed = []
        for row in self.registry.runs():
            if experiment is not None and row.experiment != experiment:
                continue
            if not row.status.is_terminal:
                row = self._look_after(row)
            listed.append(
                ListedRun(
                    state=self._state(row),
                    display_name=row.display_name,
                    tags=dict(row.tags),
                    parent_run_id=row.parent_run_id,
                )
            )
        return listed

    def submitted_spec(self, ref: RunRef) -> JobSpec:
        """The job spec the run was submitted with, kept in its folder.

        Raises:
            InvalidInputError: The run was submitted by a version that did not keep it, or
                the file is damaged (the message names it).
        """
        path = self._row(ref).run_dir / SUBMITTED_SPEC_FILE
        again = f"submit its script again with resume_from='{ref.recovery_id}'"
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise InvalidInputError(
                f"run '{ref}' has no {SUBMITTED_SPEC_FILE} in {path.parent}: it was submitted "
                f"before runs kept their job spec; {again}"
            ) from None
        except (OSError, UnicodeDecodeError) as error:  # a folder there, bytes that are no text
            raise InvalidInputError(
                f"run '{ref}': its job spec {path} cannot be read ({type(error).__name__}); {again}"
            ) from None
        try:
            return JobSpec.from_json(text)
        except InvalidInputError as error:
            raise InvalidInputError(
                f"run '{ref}': its job spec {path} is damaged ({error}); {again}"
            ) from None

    def dataset_names(self) -> list[str]:
        """The names of the registry's datasets, sorted."""
        return sorted(self.registry.dataset_names())

    def datastore_names(self) -> list[str]:
        """The names of the workspace's datastores (its datastores file's), sorted."""
        return sorted(self.workspace.datastore_names())

    def get_state(self, ref: RunRef) -> RunState:
        """Returns the run's current state.

        Checking is also looking after: a run whose supervisor vanished is Failed, and a
        queued run that nobody started while its cluster has a free slot is started.
        """
        return self._state(self._look_after(self._row(ref)))

    def _state(self, row: RunRow) -> RunState:
        return RunState(
            ref=self._ref(row),
            status=row.status,
            failure_kind=FailureKind(row.failure_kind) if row.failure_kind else None,
            error=row.error,
            attempt=row.attempt,
            created_at=_time(row.created_at),
            started_at=_time(row.started_at),
            ended_at=_time(row.ended_at),
            exit_code=row.exit_code,
            portal_url=run_page_url(row.run_dir),
        )

    def read_log(self, ref: RunRef, offset: int) -> bytes:
        """The run's driver log from byte `offset` on (empty while there is none yet)."""
        try:
            with (self._row(ref).run_dir / "snapshot" / DRIVER_LOG).open("rb") as log:
                log.seek(offset)
                return log.read()
        except FileNotFoundError:
            return b""

    def cancel(self, ref: RunRef) -> None:
        """Cancels the run and its unfinished child runs (no effect on a finished run).

        A queued run is Canceled at once; a started one through its supervisor: its
        processes get SIGTERM, then SIGKILL. A sweep's trials are canceled here too, not only
        by its driver, which may have died; a trial submitted while its parent is being
        canceled is canceled as it is recorded.
        """
        row = self._row(ref)
        if not row.status.is_terminal:
            self._cancel_one(ref, row)
        for child in self.registry.runs(parent_run_id=row.run_id):
            if not child.status.is_terminal:
                self.cancel(self._ref(child))

    def _cancel_one(self, ref: RunRef, row: RunRow) -> None:
        if self.registry.cancel(row.run_id):
            rewrite_run_page(self.registry, row.run_id, driver_log=DRIVER_LOG)
            return
        self._look_after(self._row(ref))

    def run_files(self, ref: RunRef) -> Datastore:
        """The run's files: its working folder, where the job wrote outputs/ and logs/.

        Raises:
            RunNotFoundError: If the run's folder was removed from the workspace.
        """
        folder = self._row(ref).run_dir / "snapshot"
        if not folder.is_dir():
            # The registry still lists the run: its files were deleted by hand. The folder
            # store's own error would say to create the folder.
            raise RunNotFoundError(
                f"the files of run '{ref.run_id}' are gone: {folder} was removed from the "
                f"workspace at {self.root}; its record (status, metrics) is all that is left"
            )
        return LocalDatastore(folder, name=f"run {ref.run_id}")

    def get_metrics(self, ref: RunRef) -> list[Metric]:
        """Every metric value the run logged, in order, with its attempt."""
        return self.registry.metric_values(self._row(ref).run_id)

    def child_runs(self, ref: RunRef) -> list[RunRef]:
        """The run's child runs, oldest first."""
        return [self._ref(row) for row in self.registry.runs(parent_run_id=self._row(ref).run_id)]

    def status_history(self, ref: RunRef) -> list[tuple[int, RunStatus, datetime.datetime]]:
        """Every status the run went through, in order: (attempt, status, time)."""
        return [
            (int(row["attempt"]), RunStatus(row["status"]), _utc(row["time"]))
            for row in self.registry.status_events(self._row(ref).run_id)
        ]

    def attempts(self, ref: RunRef) -> list[dict[str, Any]]:
        """The run's attempts, first to last: status, failure kind, error, exit code, times."""
        return [dict(row) for row in self.registry.attempts(self._row(ref).run_id)]

    # ---- datasets -------------------------------------------------------------------------

    def resolve_dataset(self, config: DatasetConfig) -> ResolvedDataset:
        """Finds the dataset version the config names (latest unless `version` is given).

        A dataset that does not exist yet but whose folder exists in the datastore becomes
        version 1, as hi-ml does.

        Raises:
            DatasetNotFoundError: No such dataset and no folder to create it from, or no such
                version; the message lists what exists.
        """
        versions = self.registry.dataset_versions(config.name)
        if not versions:
            store = self.datastore(config.datastore)
            if store.list(f"{config.name}/") and config.version is not None:
                raise DatasetNotFoundError(
                    f"dataset '{config.name}' is not registered, so it has no version "
                    f"{config.version}: its folder '{config.name}/' in datastore '{store.name}' "
                    "becomes version 1 when a job asks for the latest (no version)"
                )
            if store.list(f"{config.name}/"):
                self.registry.add_dataset_version(
                    config.name, store.name, config.name, None, only_if_new=True
                )
                versions = self.registry.dataset_versions(config.name)
        if not versions:
            known = ", ".join(self.registry.dataset_names()) or "none"
            raise DatasetNotFoundError(
                f"no dataset named '{config.name}' in the workspace at {self.root}, and no "
                f"folder '{config.name}/' in datastore "
                f"'{config.datastore or DEFAULT_DATASTORE}' to create it from. Known datasets: "
                f"{known}."
            )
        chosen = versions[-1]
        if config.version is not None:
            matching = [v for v in versions if v["version"] == config.version]
            if not matching:
                existing = ", ".join(str(v["version"]) for v in versions)
                raise DatasetNotFoundError(
                    f"dataset '{config.name}' has no version {config.version}; its versions "
                    f"are {existing}"
                )
            chosen = matching[0]
        return ResolvedDataset(
            chosen["name"],
            int(chosen["version"]),
            chosen["datastore"],
            chosen["path"],
            chosen["created_by_run"],
        )

    def _register_dataset_version(
        self, name: str, datastore: str, folder: str, created_by_run: str | None
    ) -> ResolvedDataset:
        version = self.registry.add_dataset_version(name, datastore, folder, created_by_run)
        assert version is not None
        return ResolvedDataset(name, version, datastore, folder, created_by_run)

    def _fetch_dataset(
        self, config: DatasetConfig, resolved: ResolvedDataset, destination: Path
    ) -> bool:
        """Hands a folder datastore's dataset over in place when `use_mounting` asks.

        That is what mounting means for a folder: the files are not copied. A blob
        datastore's dataset is downloaded instead, as a local run's inputs are.
        """
        store = self.datastore(resolved.datastore)
        if not (config.use_mounting and isinstance(store, LocalDatastore)):
            return False
        link_dataset(store, resolved.path, destination)
        return True

    def run_outputs(self, ref: RunRef) -> list[ResolvedDataset]:
        """The dataset versions the run registered (its output datasets), in order.

        A pipeline step that took an earlier run's outputs instead of running has that run's.
        """
        row = self._row(ref)
        return [output for output, _ in self._recorded_outputs(row.reused_from or row.run_id)]

    def _recorded_outputs(self, run_id: str) -> list[tuple[ResolvedDataset, str | None]]:
        """The versions the run registered, each with the digest of its files (if recorded)."""
        return [
            (
                ResolvedDataset(
                    row["name"], int(row["version"]), row["datastore"], row["path"], run_id
                ),
                row["content_digest"],
            )
            for row in self.registry.datasets_created_by(run_id)
        ]

    def run_inputs(self, ref: RunRef) -> list[ResolvedDataset]:
        """The dataset versions the run read (its input datasets), in the order it names them.

        They are the versions its launch plan pinned at submission, as the registry has them
        (with the run that made each); a version removed from the registry since (or whose
        number went to another folder) is given as the launch plan recorded it, without its
        maker.

        Raises:
            RunNotFoundError: No such run.
            ConfigurationError: The run was submitted by a version of himl-tasks whose launch
                plans this one cannot read.
        """
        found = []
        for read in self._row(ref).launch_plan.inputs:
            row = self.registry.dataset_version(read.name, read.version)
            found.append(
                ResolvedDataset(
                    read.name,
                    read.version,
                    read.datastore,
                    read.path,
                    None if row is None or row["path"] != read.path else row["created_by_run"],
                )
            )
        return found

    def dataset_versions(self, name: str) -> list[dict[str, Any]]:
        """The versions of a dataset, oldest first: datastore, path, creating run, time."""
        return [dict(row) for row in self.registry.dataset_versions(name)]

    def datastore(self, name: str = "") -> Datastore:
        """The datastore of that name ("" for the default, a folder under the workspace)."""
        return self.workspace.datastore(name)

    # ---- helpers --------------------------------------------------------------------------

    def _look_after(self, row: RunRow) -> RunRow:
        """The safety net under the launchers: no run is left without its process.

        A queued run is started when its cluster has a free slot nobody gave it (its
        submitter died before starting it, say). A run with a slot whose launcher died before
        its supervisor started gets a supervisor from this process. A run whose supervisor
        died is Failed (`infrastructure`, so it is resubmitted), its job processes killed, and
        the slot it held goes to the next queued run.

        Returns:
            The run as it is now.
        """
        if row.status.is_terminal:
            return row
        reap_supervisors()
        alive = row.supervisor_alive()
        if row.status in (RunStatus.NOT_STARTED, RunStatus.QUEUED):
            if row.supervisor_pid is not None and not alive:  # died in its restart delay
                self.registry.requeue(row.run_id, this_launcher())
            limit = cluster_limit(self.registry, row.compute)
            if not self.registry.startable(row.compute, limit):
                self._free_lost_slots(row.compute)
            if self.registry.startable(row.compute, limit):
                start_queued_runs(self.registry, row.compute, self._launch_secrets())
            return self._row_of(row.run_id)
        if alive:
            return row
        if row.supervisor_pid is None:
            if row.launcher_alive():
                return row  # its supervisor is being started
            launcher = row.launcher_pid or 0, row.launcher_started or ""
            if self.registry.take_over_launch(row.run_id, launcher, this_launcher()):
                start_supervisor(self.registry, row.run_id, self._launch_secrets())
            return self._row_of(row.run_id)
        if row.job_group is not None:  # orphaned job processes would run on unwatched
            with contextlib.suppress(ProcessLookupError):
                os.killpg(row.job_group, signal.SIGKILL)
        if row.status is RunStatus.CANCEL_REQUESTED:
            self.registry.move(
                row.run_id, RunStatus.CANCELED, failure_kind=FailureKind.CANCELED.value
            )
        else:
            self.registry.move(
                row.run_id,
                RunStatus.FAILED,
                failure_kind=FailureKind.INFRASTRUCTURE.value,
                error=f"the run's supervisor process ({row.supervisor_pid}) ended unexpectedly",
            )
        rewrite_run_page(self.registry, row.run_id, driver_log=DRIVER_LOG)
        # A driver gone leaves no child run going: a pipeline's steps or a sweep's trials
        # would run on unwatched, beside those of a resubmission.
        self.cancel(self._ref(row))
        start_queued_runs(self.registry, row.compute, self._launch_secrets())
        return self._row_of(row.run_id)

    def _free_lost_slots(self, compute: str) -> None:
        """Looks after the runs holding the cluster's slots whose processes died.

        A queued run waits for a slot, and a slot is freed when its run's supervisor ends it;
        a supervisor killed outright frees nothing. Without this, a cluster whose slots are all
        held by such runs would keep its queue waiting until someone looked at each of them.
        """
        for holder in self.registry.slot_holders(compute):
            if not holder.has_live_process():
                self._look_after(holder)

    def _row_of(self, run_id: str) -> RunRow:
        row = self.registry.get_run(run_id)
        if row is None:
            raise RunNotFoundError(f"no run '{run_id}' in the workspace at {self.root}")
        return row

    def _ref(self, row: RunRow) -> RunRef:
        return RunRef(row.experiment, row.run_id, self.name, portal_url=run_page_url(row.run_dir))

    def run_tags(self, ref: RunRef) -> dict[str, str]:
        """The tags the run was submitted with (the job's, and the command line)."""
        return dict(self._row(ref).tags)

    def _row(self, ref: RunRef) -> RunRow:
        row = self.registry.get_run(ref.run_id)
        if row is None:
            raise RunNotFoundError(f"no run '{ref}' in the workspace at {self.root}")
        return row


def _parameters(args: tuple[str, ...]) -> dict[str, Any]:
    """Reads `--name value` and `--name=value` pairs out of a script's arguments."""
    found: dict[str, Any] = {}
    index = 0
    while index < len(args):
        arg = args[index]
        if arg.startswith("--") and len(arg) > 2:
            if "=" in arg:
                key, value = arg[2:].split("=", 1)
                found[key] = value
            elif index + 1 < len(args) and not args[index + 1].startswith("--"):
                found[arg[2:]] = args[index + 1]
                index += 1
            else:
                found[arg[2:]] = True
        index += 1
    return found


def _module_in_snapshot(root: Path, module: str) -> bool:
    base = root.joinpath(*module.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _utc(stamp: float) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(stamp, datetime.UTC)


def _time(stamp: float | None) -> datetime.datetime | None:
    return None if stamp is None else _utc(stamp)
