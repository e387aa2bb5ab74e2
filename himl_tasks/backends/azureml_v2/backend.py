"""The AzureML backend on azure-ai-ml (SDK v2): command jobs, data assets, MLflow metrics."""

from __future__ import annotations

import contextlib
import datetime
import logging
import os
import re
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from himl_tasks.backends.azureml_common.amlignore import amlignore_for_submission
from himl_tasks.backends.azureml_common.artifact_store import (
    ARTIFACT_DATASTORE,
    AZUREML_RUN_FILE_FOLDERS,
    run_files_folder,
)

# The run files of a v2 job are where a v1 run's are: the artifact store, the same folders.
from himl_tasks.backends.azureml_common.datastore_credentials import check_datastore_credentials
from himl_tasks.backends.azureml_common.tags import PIPELINE_TAG, SUBMISSION_TAG
from himl_tasks.backends.azureml_v2 import sdk
from himl_tasks.backends.azureml_v2.datastores import (
    blob_datastore_of,
    datastore_path,
    split_datastore_path,
)
from himl_tasks.backends.azureml_v2.environment import check_environment, environment_reference
from himl_tasks.backends.azureml_v2.pipelines import (
    DIGEST_TAG,
    PIPELINE_TYPE,
    STEP_TAG,
    after_inputs,
    after_outputs,
    bind_steps,
    check_component_name,
    check_pipeline_v2,
    is_reused,
    latest_inputs,
    pipeline_job,
    published_reference,
)
from himl_tasks.backends.azureml_v2.run_status import (
    registered_inputs,
    registered_outputs,
    state_from_run_details,
)
from himl_tasks.backends.azureml_v2.schedules import job_schedule, schedule_of
from himl_tasks.backends.azureml_v2.service import AzureMLV2Service, MLClientService
from himl_tasks.backends.azureml_v2.submission import (
    SERVERLESS,
    Placement,
    command_job,
    job_inputs,
    job_name_for,
    job_of_output_folder,
    job_tags,
    new_job_name,
    output_names,
    placement_for,
    snapshot_rules,
)
from himl_tasks.backends.azureml_v2.submitted_specs import (
    forget_submitted_spec,
    load_submitted_pipeline,
    load_submitted_spec,
    save_submitted_spec,
)
from himl_tasks.backends.azureml_v2.sweeps import check_sweep_v2, sweep_job
from himl_tasks.backends.base import Backend
from himl_tasks.datasets import DatasetConfig, ResolvedDataset
from himl_tasks.errors import (
    ConfigurationError,
    DatasetNotFoundError,
    InvalidInputError,
    PipelineNotFoundError,
    RunNotFoundError,
    StorageError,
)
from himl_tasks.job_spec import JobSpec, Priority
from himl_tasks.job_variables import azureml_input_name, azureml_output_name
from himl_tasks.pipeline_runs import (
    PipelineSchedule,
    PublishedPipeline,
    StepRun,
    checked_version,
    published_digest,
)
from himl_tasks.pipelines import PipelineSpec
from himl_tasks.run_plan import RunPlan
from himl_tasks.runs import (
    ListedRun,
    Metric,
    RunRef,
    RunState,
    parse_recovery_id,
)
from himl_tasks.secret_reference import secret_references
from himl_tasks.storage import Datastore
from himl_tasks.storage.folder_view import FolderView
from himl_tasks.sweeps import SweepSpec

logger = logging.getLogger(__name__)

USER_LOGS = "user_logs/"
# The log a v2 job's output goes to, among its user logs: `std_log.txt`, or rank 0's
# (`std_log_process_0.txt`, ...) for a distributed job; the SDK's own `jobs.stream` follows
# the same one (azure/ai/ml/constants/_job/job.py, COMMON_RUNTIME_STREAM_LOG_PATTERN).
_STREAM_LOG = re.compile(r"user_logs/std_log[\D]*[0]*(?:_ps)?\.txt")
# A job's shared memory size: "<number><unit>", the number above 0, the unit b, k, m or g
# (azure/ai/ml/_schema/job_resource_configuration.py, `shm_size`; the SDK does not check it).
_SHM_SIZE = re.compile(r"0*[1-9][0-9]*[bkmgBKMG]")
SWEEP_TYPE = "sweep"
REGISTER_ATTEMPTS = 5


class AzureMLV2Backend(Backend):
    """Runs jobs and keeps datasets in an AzureML workspace, through azure-ai-ml (SDK v2).

    A job is a v2 command job (a sweep, a sweep job); its `name` is the run id and its
    `experiment_name` the experiment. Datasets are `uri_folder` data assets; datastores are
    blob containers moved through the transfer engine; metrics come from MLflow.

    Beyond the `Backend` protocol, this backend offers `register_datastore` (a blob
    container, with its key or SAS), as `AzureMLV1Backend` does.

    Args:
        ml_client: An `azure.ai.ml.MLClient`; default: found by
            `himl_tasks.backends.azureml_v2.workspace.ml_client()`.
        service: The AzureML service calls (default: the SDK's, on `ml_client`).
        account_urls: Blob endpoints by storage account, for accounts not reached at their
            public name (private endpoints, emulators).
        storage_credential: An azure-identity credential for identity-based datastores.
        storage_options: Options for every `BlobDatastore` (concurrency, block size, retry).
    """

    name = "azureml_v2"
    max_poll_seconds = 15.0  # each state check is a service call
    run_file_folders = AZUREML_RUN_FILE_FOLDERS

    def __init__(
        self,
        ml_client: Any = None,
        *,
        service: AzureMLV2Service | None = None,
        account_urls: Mapping[str, str] | None = None,
        storage_credential: Any = None,
        **storage_options: Any,
    ) -> None:
        if service is None:
            if ml_client is None:
                from himl_tasks.backends.azureml_v2.workspace import (
                    ml_client as find_ml_client,
                )

                ml_client = find_ml_client()
            service = MLClientService(ml_client)
        self.service = service
        self._account_urls = dict(account_urls or {})
        self._storage_credential = storage_credential
        self._storage_options = storage_options
        self._stores: dict[str, Datastore] = {}
        self._portal_urls: dict[str, str] = {}
        self._timeouts: dict[str, float | None] = {}

    def __repr__(self) -> str:
        return f"AzureMLV2Backend(workspace={self.service.workspace_name!r})"

    def workspace_key(self) -> str:
        """The workspace's subscription, resource group and name."""
        service = self.service
        return (
            f"azureml_v2:{service.subscription_id}/{service.resource_group}/"
            f"{service.workspace_name}"
        )

    def workspace_description(self) -> str:
        """The workspace as a person recognises it."""
        return f"AzureML workspace '{self.service.workspace_name}' (SDK v2)"

    # ---- datastores -----------------------------------------------------------------------

    def datastore(self, name: str = "") -> Datastore:
        """The datastore of that name ("" for the workspace's default), resolved once."""
        if name not in self._stores:
            self._stores[name] = blob_datastore_of(
                self.service.datastore(name),
                account_urls=self._account_urls,
                credential=self._storage_credential,
                **self._storage_options,
            )
        return self._stores[name]

    def register_datastore(
        self,
        name: str,
        *,
        container: str,
        account_name: str,
        account_key: str = "",
        sas_token: str = "",
        endpoint: str = "core.windows.net",
        protocol: str = "https",
    ) -> Datastore:
        """Registers (or replaces) a blob container datastore; returns it.

        Raises:
            ConfigurationError: Unless exactly one of `account_key` and `sas_token` is given.
        """
        check_datastore_credentials(name, account_key, sas_token)
        with sdk.quiet():
            entities = sdk.entities()
            credentials = (
                entities.AccountKeyConfiguration(account_key=account_key)
                if account_key
                else entities.SasTokenConfiguration(sas_token=sas_token)
            )
            definition = entities.AzureBlobDatastore(
                name=name,
                account_name=account_name,
                container_name=container,
                endpoint=endpoint,
                protocol=protocol,
                credentials=credentials,
            )
        self.service.create_datastore(definition)
        self._stores.pop(name, None)
        return self.datastore(name)

    def datastore_names(self) -> list[str]:
        """The names of the workspace's datastores, sorted."""
        return sorted(self.service.datastore_names())

    def check_datastore(self, name: str) -> None:
        """Raises unless the workspace has the datastore (an output needs only AzureML's).

        Raises:
            DatastoreNotFoundError: No such datastore.
        """
        self.service.datastore(name)

    # ---- datasets -------------------------------------------------------------------------

    def dataset_names(self) -> list[str]:
        """The names of the workspace's data assets, sorted."""
        return sorted(self.service.data_names())

    def resolve_dataset(self, config: DatasetConfig) -> ResolvedDataset:
        """Finds the data asset version the config names (the latest unless `version`).

        A data asset that does not exist yet but whose folder exists in the datastore is
        created from that folder as version 1, as hi-ml does.

        Raises:
            DatasetNotFoundError: No such data asset and no folder to create it from, or no
                such version.
        """
        found = self.service.data(config.name, config.version)
        if found is not None:
            return self._resolved(found, config)
        store = self.datastore(config.datastore)
        if config.version is not None:
            raise DatasetNotFoundError(
                f"no data asset '{config.name}' in {self.workspace_description()}, so there "
                f"is no version {config.version} of it"
            )
        if not store.list(f"{config.name}/"):
            raise DatasetNotFoundError(
                f"no data asset '{config.name}' in {self.workspace_description()}, and no "
                f"folder '{config.name}/' in datastore '{store.name}' to create it from"
            )
        return self._register_dataset_version(config.name, store.name, config.name, None)

    def _resolved(self, data: Any, config: DatasetConfig) -> ResolvedDataset:
        tags = data.tags or {}
        made_by = tags.get("created_by_run")
        where = split_datastore_path(str(data.path or ""))
        if where is None:
            # A data asset outside any datastore (uploaded from a machine, a URL): only the
            # SDK could read it; `_fetch_dataset` says so.
            datastore, folder = self.datastore(config.datastore).name, ""
        else:
            datastore, folder = where
        if made_by is None:  # a job's output, registered by AzureML: its folder names the job
            made_by = job_of_output_folder(str(data.name), folder)
        return ResolvedDataset(
            str(data.name),
            int(data.version),
            datastore,
            folder,
            None if made_by is None else str(made_by),
        )

    def _register_dataset_version(
        self, name: str, datastore: str, folder: str, created_by_run: str | None
    ) -> ResolvedDataset:
        """Creates the next version of a `uri_folder` data asset over `folder`.

        Data asset versions are immutable and given by the creator: when the service refuses
        the version because another creator took it first, the next one is tried.
        """
        tags = {"himl_path": folder}
        if created_by_run:
            tags["created_by_run"] = created_by_run
        for _ in range(REGISTER_ATTEMPTS):
            latest = self.service.data(name, None)
            version = 1 if latest is None else int(latest.version) + 1
            with sdk.quiet():
                data = sdk.entities().Data(
                    name=name,
                    version=str(version),
                    path=datastore_path(datastore, folder),
                    type="uri_folder",
                    tags=tags,
                )
            try:
                made = self.service.create_data(data)
            except Exception:
                # Only "that version exists now" is worth another try; the SDK words it
                # differently by path (a 409, or its own validation error), so look.
                if not self._data_version_exists(name, version):
                    raise
                continue
            return self._resolved(made, DatasetConfig(name, datastore=datastore))
        raise ConfigurationError(
            f"could not register a new version of data asset '{name}': other versions kept "
            f"being created at the same moment ({REGISTER_ATTEMPTS} attempts)"
        )

    def _data_version_exists(self, name: str, version: int) -> bool:
        try:
            return self.service.data(name, version) is not None
        except DatasetNotFoundError:  # the asset exists, without that version
            return False

    def _fetch_dataset(
        self, config: DatasetConfig, resolved: ResolvedDataset, destination: Path
    ) -> bool:
        """Downloads through the transfer engine (also for `use_mounting`: no mount here).

        Raises:
            ConfigurationError: For a data asset outside any datastore.
        """
        if not resolved.path:
            raise ConfigurationError(
                f"data asset '{resolved.name}' version {resolved.version} is not a folder of a "
                "datastore, so himl-tasks cannot download it; register it from a datastore "
                "folder (backend.register_dataset)"
            )
        return False

    # ---- submission -----------------------------------------------------------------------

    def check_spec(self, spec: JobSpec) -> None:
        """Refuses what the v2 backend cannot honour, before any side effect.

        Raises:
            InvalidInputError: A SecretReference among the environment variables (AzureML
                would store its value with the job), a private wheel, an argument AzureML
                would read as a binding (`${{...}}`), a shared memory size AzureML cannot
                read, more nodes than the cluster has, or a low-priority job on a dedicated
                cluster.
            ConfigurationError: No environment to run in (none named is registered, none
                can be built).
            ComputeNotFoundError: No such cluster.
        """
        referenced = secret_references(spec.environment_variables)
        if referenced:
            raise InvalidInputError(
                f"environment variable {', '.join(sorted(referenced))} is a SecretReference, "
                "which the AzureML v2 backend does not send (AzureML would store the value "
                "with the job): keep the secret in the workspace's Key Vault and read it in "
                "the job"
            )
        bindings = [arg for arg in spec.args if "${{" in arg]
        if bindings:
            raise InvalidInputError(
                f"argument {bindings[0]!r} holds '${{{{', which AzureML v2 reads in a job's "
                "command as a reference to the job's inputs or outputs (${{inputs.<name>}}); "
                "pass the value another way (an environment variable, a file)"
            )
        if spec.docker_shm_size and not _SHM_SIZE.fullmatch(spec.docker_shm_size):
            raise InvalidInputError(
                f"docker_shm_size {spec.docker_shm_size!r} is not a size AzureML reads: a "
                "whole number above 0 and a unit, b, k, m or g (e.g. '16g')"
            )
        check_environment(spec, python_path=_python_path())
        if spec.environment_name:  # only looked up: planning may register an input's asset
            environment_reference(spec, self.service)
        if spec.compute:  # "" is check_compute's to refuse
            self._placement(spec)

    def check_compute(self, name: str) -> None:
        """Raises unless `name` is a compute cluster of the workspace, or "serverless".

        Raises:
            InvalidInputError: For "" (an AzureML job needs a cluster, or serverless).
            ComputeNotFoundError: No such cluster.
        """
        if not name:
            raise InvalidInputError(
                "an AzureML job needs a compute cluster: set JobSpec.compute to its name, or "
                f"to '{SERVERLESS}' for serverless compute"
            )
        if name != SERVERLESS:
            self.service.compute(name)

    def _placement(self, spec: JobSpec) -> Placement:
        """Where the job runs; a low-priority job needs Spot (serverless) or such a cluster.

        Raises:
            InvalidInputError: A low-priority job on a dedicated cluster, or more nodes than
                the cluster can scale to (the job would wait for them forever).
        """
        low_cluster = False
        if spec.compute != SERVERLESS:
            cluster = self.service.compute(spec.compute)
            most = getattr(cluster, "max_instances", None)
            if isinstance(most, int) and most > 0 and spec.num_nodes > most:
                raise InvalidInputError(
                    f"the job asks for {spec.num_nodes} nodes, and cluster '{spec.compute}' "
                    f"scales to at most {most} (its max_instances): lower num_nodes, or use "
                    "a larger cluster"
                )
            tier = str(getattr(cluster, "tier", "") or "")
            low_cluster = tier.replace("_", "").lower() == "lowpriority"
            if spec.priority is Priority.LOW_PRIORITY and not low_cluster:
                raise InvalidInputError(
                    f"a low-priority job needs a low-priority cluster, and '{spec.compute}' "
                    f"is dedicated: choose a low-priority cluster, or compute='{SERVERLESS}' "
                    "(AzureML's Spot job tier)"
                )
        return placement_for(spec.compute, spec.priority, cluster_is_low_priority=low_cluster)

    def _submit_plan(self, plan: RunPlan, submission_id: str | None) -> RunRef:
        """Creates the plan's command job; returns at once with its run.

        With `submission_id`, the job's name is derived from it (`job_name_for`): a job name
        is unique in a workspace and part of the request that creates the job, so a
        submission whose id already has a job returns that job, even when the submitter died
        before it heard back. The id is also kept in the job's `himl_submission_id` tag.
        """
        job = self._command_job(plan, submission_id)
        # The spec is kept before the job exists, so a job that exists always has it (for
        # `submitted_spec`); written again by a second submitter of the same id, it is the
        # same spec.
        files = self.run_files(RunRef(plan.experiment, str(job.name), self.name))
        try:
            save_submitted_spec(files, plan.spec)
        except StorageError as error:
            # Only `himl resubmit` needs it (and then says it is missing): not worth a job.
            logger.warning(
                "job %s: its job spec could not be kept in the artifact store, so `himl "
                "resubmit` will not find it: %s",
                job.name,
                error,
            )
        try:
            return self._create(job, plan, submission_id)
        except Exception:
            # The spec goes only when the service says it has no job of that name: an error
            # may also be a lost answer to a job the service made, which keeps its spec.
            with contextlib.suppress(Exception):
                if not self._job_exists(str(job.name)):
                    forget_submitted_spec(files)
            raise

    def _job_exists(self, name: str) -> bool:
        try:
            self.service.job(name)
        except RunNotFoundError:
            return False
        return True

    def _command_job(self, plan: RunPlan, submission_id: str | None, **step: Any) -> Any:
        """The command job of a plan.

        `step` holds what a pipeline step's node adds: its name, inputs, extra outputs,
        tags and `is_deterministic` (see `command_job`).
        """
        spec = plan.spec
        placement = self._placement(spec)
        name = job_name_for(submission_id) if submission_id is not None else new_job_name()
        environment = environment_reference(spec, self.service, python_path=_python_path())
        datastores = [self.service.datastore(c.datastore).name for c in spec.output_datasets]
        tags = {**job_tags(plan, placement, submission_id), **step.pop("tags", {})}
        return command_job(
            plan,
            name=step.pop("name", name),
            environment=environment,
            placement=placement,
            tags=tags,
            output_datastores=datastores,
            **step,
        )

    def _create(self, job: Any, plan: RunPlan, submission_id: str | None) -> RunRef:
        with amlignore_for_submission(plan.spec.snapshot_root, snapshot_rules(plan)):
            try:
                created = self.service.create_job(job)
            except Exception:
                # The same submission made at the same moment elsewhere: the service refused
                # a second job of that name, and the first one is the answer.
                found = self.find_submission(submission_id) if submission_id else None
                if found is None:
                    raise
                return found
        return self._ref(created)

    def _submit_sweep_plan(
        self, plan: RunPlan, sweep: SweepSpec, submission_id: str | None
    ) -> RunRef:
        """Creates a v2 sweep job around the plan's command job; its trials are its children.

        With `submission_id`, the sweep job's name is derived from it, as in `_submit_plan`.
        The job's `max_run_duration` bounds each trial, as on v1.
        """
        job = sweep_job(self._command_job(plan, submission_id), sweep)
        return self._create(job, plan, submission_id)

    def check_sweep(self, sweep: SweepSpec) -> None:
        """Raises unless a v2 sweep job can express the sweep (no side effect).

        Raises:
            InvalidInputError: Naming what the sweep asks that v2 cannot run.
        """
        check_sweep_v2(sweep)

    def find_submission(self, submission_id: str) -> RunRef | None:
        """The run submitted under `submission_id`, or None if there is none."""
        try:
            return self.get_run_ref(job_name_for(submission_id))
        except RunNotFoundError:
            return None

    # ---- runs -----------------------------------------------------------------------------

    def _ref(self, job: Any) -> RunRef:
        url = str(job.studio_url or "")
        self._portal_urls[str(job.name)] = url
        return RunRef(str(job.experiment_name), str(job.name), self.name, portal_url=url)

    def get_run_ref(self, recovery_id: str) -> RunRef:
        """Finds a run by `experiment:job_name` or bare `job_name`.

        Raises:
            RunNotFoundError: If there is no such job (or it is in another experiment).
        """
        experiment, name = parse_recovery_id(recovery_id)
        job = self.service.job(name)
        if experiment and job.experiment_name != experiment:
            raise RunNotFoundError(
                f"job '{name}' is in experiment '{job.experiment_name}', not '{experiment}'"
            )
        return self._ref(job)

    def list_runs(self, experiment: str | None = None) -> list[ListedRun]:
        """The workspace's jobs (a sweep's trials after it), oldest first; or one experiment's.

        One listing call, one more per sweep (its trials), then each job's run details (its
        status and times), as `get_state` reads them.
        """
        listed = []
        for job in oldest_first(self.service.list_jobs()):
            if experiment is not None and job.experiment_name != experiment:
                continue
            listed.append(self._listed(job, None))
            if str(getattr(job, "type", "")) in (SWEEP_TYPE, PIPELINE_TYPE):
                for child in oldest_first(self.service.list_jobs(parent_job_name=job.name)):
                    listed.append(self._listed(child, str(job.name)))
        return listed

    def _listed(self, job: Any, parent: str | None) -> ListedRun:
        ref = self._ref(job)
        return ListedRun(
            state=self.get_state(ref),
            display_name=str(job.display_name or job.name),
            tags={str(k): str(v) for k, v in (job.tags or {}).items()},
            parent_run_id=parent,
        )

    def submitted_spec(self, ref: RunRef) -> JobSpec:
        """The job spec a command job was submitted with, kept in its files at submission.

        AzureML keeps no job spec; this backend writes it beside the job's files
        (`himl_tasks.backends.azureml_v2.submitted_specs`). A sweep job keeps none:
        resubmitting it as one command job would not be the same job.

        Raises:
            RunNotFoundError: No such job.
            InvalidInputError: A sweep or one of its trials, a pipeline job, a job submitted
                otherwise (SDK v1, the studio, an older himl-tasks), or a damaged spec;
                saying how to resubmit instead.
        """
        job = self.service.job(ref.run_id)
        if str(getattr(job, "type", "")) == SWEEP_TYPE:
            raise InvalidInputError(
                f"run '{ref}' is a sweep job, which himl resubmit does not resubmit (its "
                "trials are made by AzureML): submit the sweep again with submit_sweep"
            )
        if str(getattr(job, "type", "")) == PIPELINE_TYPE:
            raise InvalidInputError(
                f"run '{ref}' is a pipeline job, which keeps a pipeline, not one job spec: "
                "submit it again with submit_pipeline(backend.submitted_pipeline(ref)), "
                "which reuses its completed steps"
            )
        return load_submitted_spec(self.run_files(ref), ref)

    def get_state(self, ref: RunRef) -> RunState:
        """The job's state, from its run details.

        A canceled job is looked at once more: its `limits.timeout` tells a timeout (AzureML
        cancels a job that reaches it) from a person's cancel.
        """
        details = self.service.run_details(ref.run_id)
        timeout = None
        if details.get("status") == "Canceled":
            timeout = self._timeout_seconds(ref.run_id)
        return state_from_run_details(ref, details, self._portal_url(ref), timeout_seconds=timeout)

    def _timeout_seconds(self, name: str) -> float | None:
        if name not in self._timeouts:
            limits = getattr(self.service.job(name), "limits", None)
            timeout = getattr(limits, "timeout", None)
            self._timeouts[name] = (
                float(timeout) if isinstance(timeout, int | float) and timeout > 0 else None
            )
        return self._timeouts[name]

    def _portal_url(self, ref: RunRef) -> str:
        if ref.portal_url:
            return ref.portal_url
        if ref.run_id not in self._portal_urls:
            self._ref(self.service.job(ref.run_id))
        return self._portal_urls[ref.run_id]

    def cancel(self, ref: RunRef) -> None:
        """Asks AzureML to cancel the job (`begin_cancel`; no effect on a finished one)."""
        if not self.get_state(ref).is_terminal:
            self.service.cancel_job(ref.run_id)

    def read_log(self, ref: RunRef, offset: int) -> bytes:
        """The job's log from byte `offset` on (empty while there is none yet).

        The log is `user_logs/std_log.txt` (rank 0's for a distributed job), fetched from
        the artifact store through the transfer engine into a scratch folder.
        """
        files = self.run_files(ref)
        logs = sorted(
            (f.name for f in files.list(USER_LOGS) if _STREAM_LOG.fullmatch(f.name)),
            key=lambda name: (len(name), name),
        )
        if not logs:
            return b""
        with tempfile.TemporaryDirectory(prefix="himl-log-") as scratch:
            files.download(logs[0], scratch, missing_ok=True)
            log = Path(scratch) / logs[0]
            if not log.exists():
                return b""
            with log.open("rb") as source:
                source.seek(offset)
                return source.read()

    def run_files(self, ref: RunRef) -> Datastore:
        """The job's files, where AzureML keeps them in the workspace's artifact store."""
        return FolderView(
            self.datastore(ARTIFACT_DATASTORE),
            run_files_folder(ref.run_id),
            name=f"run {ref.run_id}",
        )

    def get_metrics(self, ref: RunRef) -> list[Metric]:
        """The job's metrics, from MLflow (see `MLClientService.metrics` for what that needs)."""
        return self.service.metrics(ref.run_id)

    def child_runs(self, ref: RunRef) -> list[RunRef]:
        """The job's children (a sweep's trials), oldest first."""
        return [self._ref(child) for child in oldest_first(self.service.list_jobs(ref.run_id))]

    def run_outputs(self, ref: RunRef) -> list[ResolvedDataset]:
        """The output dataset versions a completed job registered, in the job's order.

        AzureML registers each named output as its data asset's next version when the job
        completes, and names the version in the job's run details (`outputs`: `OUTPUT_<i>`
        -> the data asset version's id). The dataset names are in the job's `himl_outputs`
        tag, in the same order. The versions are the job's own, whatever later jobs
        registered since.
        """
        details = self.service.run_details(ref.run_id)
        if details.get("status") != "Completed":
            return []
        reused = self._reused_job(ref.run_id)
        if reused is not None:  # its outputs are the reused job's, as `jobs.download` reads
            details = self.service.run_details(reused)
        registered = registered_outputs(details)
        names = output_names(self.run_tags(ref))
        found = []
        for index, name in enumerate(names):
            output = registered.get(azureml_output_name(index))
            if output is not None and output[0] == name:
                found.append(self.resolve_dataset(DatasetConfig(name, version=output[1])))
        return found

    def run_inputs(self, ref: RunRef) -> list[ResolvedDataset]:
        """The data asset versions the job read (`INPUT_<i>`), in the job spec's order.

        Read from the job's run details (`inputs`); a pipeline step reads there the version
        its upstream step registered. A reused step read what the job it reused read.
        """
        name = self._reused_job(ref.run_id) or ref.run_id
        read = registered_inputs(self.service.run_details(name))
        found = []
        for index in range(len(read)):
            version = read.get(azureml_input_name(index))
            if version is None:
                break
            found.append(self.resolve_dataset(DatasetConfig(version[0], version=version[1])))
        return found

    def _reused_job(self, name: str) -> str | None:
        """The job a reused pipeline step's child job took its outputs from, else None."""
        return is_reused(self.service.job(name))

    # ---- pipelines ------------------------------------------------------------------------

    def submit_pipeline(
        self, pipeline: PipelineSpec, *, submission_id: str | None = None
    ) -> RunRef:
        """Creates the pipeline as one AzureML v2 pipeline job; its steps are command nodes.

        See `himl_tasks.backends.azureml_v2.pipelines` for how a step becomes a node. Every
        step is planned (checked, its snapshot selected) and the pipeline checked against
        what v2 can express before anything is written; then the inputs no step writes are
        resolved once each. With `submission_id`, the pipeline job's name is derived from
        it, as a single job's is: one id, one pipeline job.

        Raises:
            InvalidInputError: Not a `PipelineSpec`, an unusable submission id, a step's job
                that cannot run here, or a pipeline v2 cannot express.
            ComputeNotFoundError: A step names a cluster that does not exist.
            DatasetNotFoundError: An input no step writes does not exist.
        """
        if not isinstance(pipeline, PipelineSpec):
            raise InvalidInputError(f"a pipeline is a PipelineSpec, not {pipeline!r}")
        found = self._submitted_before(submission_id)
        if found is not None:
            return found
        experiment = pipeline.experiment_name()
        plans = self._step_plans(pipeline)
        nodes = self._step_nodes(pipeline, plans, self.resolve_existing_inputs(pipeline))
        name = job_name_for(submission_id) if submission_id is not None else new_job_name()
        tags = {**pipeline.tags, PIPELINE_TAG: pipeline.name}
        if submission_id is not None:
            tags[SUBMISSION_TAG] = submission_id
        job = pipeline_job(pipeline, nodes, name=name, experiment=experiment, tags=tags)
        return self._create_pipeline_job(job, pipeline, plans, experiment, submission_id)

    def _step_plans(self, pipeline: PipelineSpec) -> dict[str, RunPlan]:
        """Each step planned without its inputs, then the pipeline checked against v2.

        Planning checks a step and chooses its snapshot; nothing is written.
        """
        plans = self.plan_steps(pipeline)
        check_pipeline_v2(pipeline, {name: snapshot_rules(p) for name, p in plans.items()})
        return plans

    def _step_nodes(
        self,
        pipeline: PipelineSpec,
        plans: Mapping[str, RunPlan],
        versions: Mapping[DatasetConfig, ResolvedDataset | None],
    ) -> dict[str, Any]:
        """Each step's command node, bound to the outputs it reads (`bind_steps`)."""
        nodes = {}
        for step in pipeline.ordered_steps:
            configs = step.job.input_datasets
            inputs = job_inputs(configs, [versions.get(config) for config in configs])
            nodes[step.name] = self._command_job(
                plans[step.name],
                None,
                name=step.name,
                inputs={**inputs, **after_inputs(pipeline, step.name)},
                extra_outputs=after_outputs(pipeline, step.name),
                tags={STEP_TAG: step.name},
                is_deterministic=step.allow_reuse,
            )
            if not step.job.display_name:
                nodes[step.name].display_name = step.name
        bind_steps(pipeline, nodes)
        return nodes

    def _create_pipeline_job(
        self,
        job: Any,
        pipeline: PipelineSpec,
        plans: Mapping[str, RunPlan],
        experiment: str,
        submission_id: str | None,
    ) -> RunRef:
        """Keeps the pipeline in the job's folder, then creates the job.

        Every step's snapshot rules are in place meanwhile (`_submit_plan` does the same
        for one job).
        """
        files = self.run_files(RunRef(experiment, str(job.name), self.name))
        try:
            save_submitted_spec(files, pipeline)
        except StorageError as error:
            logger.warning(
                "pipeline job %s: its pipeline could not be kept in the artifact store, so "
                "submitted_pipeline will not find it: %s",
                job.name,
                error,
            )
        try:
            with _snapshot_rules_in_place(plans):
                return self._ref(self.service.create_job(job))
        except Exception:
            found = self.find_submission(submission_id) if submission_id else None
            if found is not None:
                return found
            with contextlib.suppress(Exception):
                if not self._job_exists(str(job.name)):
                    forget_submitted_spec(files)
            raise

    def _pipeline_job(self, ref: RunRef) -> Any:
        job = self.service.job(ref.run_id)
        if str(getattr(job, "type", "")) != PIPELINE_TYPE:
            raise InvalidInputError(
                f"run '{ref}' is not a pipeline run (it is a {getattr(job, 'type', 'job')} job)"
            )
        return job

    def _pipeline_of(self, job: Any, ref: RunRef) -> PipelineSpec:
        """The pipeline a pipeline job runs.

        It is kept in the job's folder, else (a job a schedule made) beside the published
        version the job names.
        """
        try:
            return load_submitted_pipeline(self.run_files(ref), ref)
        except InvalidInputError:
            published = published_reference(getattr(job, "component", None))
            if published is None:
                raise
        name, version = published
        component = self.service.component(name, version)
        if component is None:
            raise InvalidInputError(
                f"run '{ref}' runs published pipeline {name} version {version or 'latest'}, "
                "which is no longer in the workspace, so its pipeline is unknown"
            )
        return self._published_pipeline(name, int(component.version))

    def pipeline_steps(self, ref: RunRef) -> list[StepRun]:
        """The steps of a pipeline job: its child jobs, by their `himl_pipeline_step` tag.

        A reused step's child job names the job it reused (`azureml.reusedrunid`).

        Raises:
            RunNotFoundError: No such job.
            InvalidInputError: The job is not a pipeline job, or keeps no pipeline.
        """
        pipeline = self._pipeline_of(self._pipeline_job(ref), ref)
        children: dict[str, Any] = {}
        for child in oldest_first(self.service.list_jobs(ref.run_id)):
            step = str((child.tags or {}).get(STEP_TAG, ""))
            if step:
                children[step] = child  # a step retried by AzureML: its newest child job
        found = []
        for step in pipeline.order:
            child = children.get(step)
            if child is None:
                found.append(StepRun(step, None))
                continue
            reused = is_reused(child)
            found.append(
                StepRun(
                    step,
                    self._ref(child),
                    None if reused is None else self.get_run_ref(reused),
                )
            )
        return found

    def submitted_pipeline(self, ref: RunRef) -> PipelineSpec:
        """The pipeline a pipeline job was submitted with, kept in its folder.

        Raises:
            RunNotFoundError: No such job.
            InvalidInputError: The job is not a pipeline job, or keeps no pipeline.
        """
        return self._pipeline_of(self._pipeline_job(ref), ref)

    # ---- published pipelines and schedules ------------------------------------------------

    def publish_pipeline(
        self, pipeline: PipelineSpec, *, description: str = ""
    ) -> PublishedPipeline:
        """Registers the pipeline as the next version of a pipeline component of its name.

        A pipeline whose content digest (its description and every step's code) equals the
        latest version's (kept in the version's `himl_pipeline_digest` tag) gives that
        version again. The steps read their existing datasets at the version latest when a
        job of it runs (`azureml:<name>@latest`). The pipeline is kept beside the version in
        the artifact store, for `submitted_pipeline` of the jobs it runs.

        Raises:
            InvalidInputError: Not a `PipelineSpec`, a name AzureML takes for no component,
                a step that cannot run, or a pipeline v2 cannot express.
            DatasetNotFoundError: An existing dataset a step reads does not exist.
        """
        if not isinstance(pipeline, PipelineSpec):
            raise InvalidInputError(f"a pipeline is a PipelineSpec, not {pipeline!r}")
        check_component_name(pipeline)
        plans = self._step_plans(pipeline)
        digest = published_digest(
            pipeline,
            {name: plan.snapshot for name, plan in plans.items()},
        )
        versions = self._published_versions(pipeline.name)
        if versions and (versions[-1].tags or {}).get(DIGEST_TAG) == digest:
            return self._published(versions[-1])
        nodes = self._step_nodes(pipeline, plans, self.resolve_existing_inputs(pipeline))
        latest_inputs(pipeline, nodes)
        version = int(versions[-1].version) + 1 if versions else 1
        save_submitted_spec(self._published_files(pipeline.name, version), pipeline)
        with sdk.quiet():
            component = sdk.entities().PipelineComponent(
                name=pipeline.name,
                version=str(version),
                description=description or None,
                tags={DIGEST_TAG: digest, PIPELINE_TAG: pipeline.name},
                jobs={step: nodes[step] for step in pipeline.order},
            )
        with _snapshot_rules_in_place(plans):
            return self._published(self.service.create_component(component))

    def _published_versions(self, name: str) -> list[Any]:
        """The component versions this backend published under `name`, oldest first."""
        versions = [
            v
            for v in self.service.component_versions(name)
            if DIGEST_TAG in (v.tags or {}) and str(v.version).isdigit()
        ]
        return sorted(versions, key=lambda v: int(v.version))

    def _published(self, component: Any) -> PublishedPipeline:
        return PublishedPipeline(
            name=str(component.name),
            version=int(component.version),
            id=str(component.id or ""),
            endpoint=f"azureml:{component.name}:{component.version}",
            description=str(component.description or ""),
        )

    def _published_files(self, name: str, version: int) -> Datastore:
        """Where a published version's pipeline is kept, in the artifact store."""
        return FolderView(
            self.datastore(ARTIFACT_DATASTORE),
            f"himl/published_pipelines/{name}/{version}",
            name=f"published pipeline {name} version {version}",
        )

    def _published_pipeline(self, name: str, version: int) -> PipelineSpec:
        return load_submitted_pipeline(
            self._published_files(name, version), f"{name} version {version}"
        )

    def published_pipelines(self, name: str | None = None) -> list[PublishedPipeline]:
        """The published pipelines (those under `name`, if given), by name, oldest first."""
        names = [name] if name is not None else sorted(self.service.component_names())
        return [self._published(v) for each in names for v in self._published_versions(each)]

    def _latest_published(self, name: str, version: int | None = None) -> Any:
        """The published version (the latest unless `version`).

        Raises:
            PipelineNotFoundError: Naming what is published.
        """
        versions = self._published_versions(name)
        found = [v for v in versions if version is None or int(v.version) == version]
        if not found:
            published = sorted({p.name for p in self.published_pipelines()})
            what = f"version {version} of " if version is not None and versions else ""
            raise PipelineNotFoundError(
                f"nothing published as {what}pipeline '{name}' in "
                f"{self.workspace_description()}; published: {', '.join(published) or 'none'}"
            )
        return found[-1]

    def submit_published_pipeline(
        self, name: str, *, version: int | None = None, submission_id: str | None = None
    ) -> RunRef:
        """Submits a published version (the latest unless `version`) as a pipeline job.

        With `submission_id`, idempotent as `submit_pipeline` is.

        Raises:
            PipelineNotFoundError: Nothing published under that name (or that version).
            InvalidInputError: A version that is not a whole number of 1 or more.
        """
        checked_version(version)
        found = self._submitted_before(submission_id)
        if found is not None:
            return found
        component = self._latest_published(name, version)
        number = int(component.version)
        pipeline = self._published_pipeline(name, number)
        experiment = pipeline.experiment_name()
        tags = {**pipeline.tags, PIPELINE_TAG: name}
        if submission_id is not None:
            tags[SUBMISSION_TAG] = submission_id
        job = pipeline_job(
            pipeline,
            f"azureml:{name}:{number}",
            name=job_name_for(submission_id) if submission_id is not None else new_job_name(),
            experiment=experiment,
            tags=tags,
        )
        return self._create_pipeline_job(job, pipeline, {}, experiment, submission_id)

    def schedule_pipeline(self, schedule: PipelineSchedule) -> PipelineSchedule:
        """Creates (or updates) a `JobSchedule` that submits the latest published version.

        Raises:
            InvalidInputError: Not a `PipelineSchedule`, or a time zone AzureML does not take.
            PipelineNotFoundError: Nothing published under the schedule's pipeline name.
        """
        if not isinstance(schedule, PipelineSchedule):
            raise InvalidInputError(f"a schedule is a PipelineSchedule, not {schedule!r}")
        component = self._latest_published(schedule.pipeline)
        pipeline = self._published_pipeline(schedule.pipeline, int(component.version))
        job = pipeline_job(
            pipeline,
            f"azureml:{schedule.pipeline}@latest",
            name=None,
            experiment=pipeline.experiment_name(),
            tags={**pipeline.tags, PIPELINE_TAG: schedule.pipeline},
        )
        made = schedule_of(self.service.create_schedule(job_schedule(schedule, job)))
        assert made is not None  # it carries the tags it was made with
        return made

    def pipeline_schedules(self) -> list[PipelineSchedule]:
        """The workspace's schedules this backend made, enabled or not, by name."""
        found = [schedule_of(entity) for entity in self.service.schedules()]
        return sorted((s for s in found if s is not None), key=lambda s: s.name)

    def remove_pipeline_schedule(self, name: str) -> None:
        """Disables, then deletes, the schedule (no error if there is none)."""
        self.service.delete_schedule(name)

    def run_tags(self, ref: RunRef) -> dict[str, str]:
        """The job's tags, as the service has them now."""
        job = self.service.job(ref.run_id)
        return {str(k): str(v) for k, v in (job.tags or {}).items()}


@contextlib.contextmanager
def _snapshot_rules_in_place(plans: Mapping[str, RunPlan]) -> Iterator[None]:
    """Every step's snapshot rules in its `.amlignore` while the SDK takes the code."""
    with contextlib.ExitStack() as stack:
        roots = {plan.spec.snapshot_root: snapshot_rules(plan) for plan in plans.values()}
        for root, rules in roots.items():
            stack.enter_context(amlignore_for_submission(root, rules))
        yield


def oldest_first(jobs: list[Any]) -> list[Any]:
    """Jobs by when they were made (`creation_context.created_at`), oldest first.

    Jobs of one moment, or without a time, keep the reverse of the service's order (it
    lists newest first).
    """
    listed = list(reversed(jobs))
    earliest = datetime.datetime.min.replace(tzinfo=datetime.UTC)

    def made(index: int) -> tuple[datetime.datetime, int]:
        context = getattr(listed[index], "creation_context", None)
        moment = getattr(context, "created_at", None)
        if isinstance(moment, datetime.datetime) and moment.tzinfo is None:
            moment = moment.replace(tzinfo=datetime.UTC)
        return (moment if isinstance(moment, datetime.datetime) else earliest, index)

    return [listed[index] for index in sorted(range(len(listed)), key=made)]


def _python_path() -> str:
    return os.environ.get("PYTHONPATH", "")
