"""The AzureML backend on azureml-core (SDK v1): what users run in production."""

from __future__ import annotations

import contextlib
import ctypes.util
import dataclasses
import datetime
import hashlib
import os
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
from himl_tasks.backends.azureml_common.datastore_credentials import check_datastore_credentials
from himl_tasks.backends.azureml_common.kept_files import PIPELINE_FILE, keep_text, kept_text
from himl_tasks.backends.azureml_common.tags import (
    OUTPUTS_TAG,
    PIPELINE_TAG,
    SUBMISSION_TAG,
    default_tags,
)
from himl_tasks.backends.azureml_v1.datasets import (
    dataset_from_folder,
    handed_on_input,
    input_consumption,
    output_configuration,
)
from himl_tasks.backends.azureml_v1.datastores import (
    SEED_FILE,
    blob_storage_for,
    read_datastore_seed,
)
from himl_tasks.backends.azureml_v1.environment import environment_for
from himl_tasks.backends.azureml_v1.hyperdrive import hyperdrive_config
from himl_tasks.backends.azureml_v1.pipelines import (
    SUBMISSION_MARK,
    check_pipeline_for_v1,
    check_shared_snapshot_roots,
    python_script_step,
    reused_run_id,
    step_name,
    submission_description,
)
from himl_tasks.backends.azureml_v1.publishing import (
    endpoint_named,
    published_description,
    published_version,
    published_versions,
)
from himl_tasks.backends.azureml_v1.recurrence import recurrence_for
from himl_tasks.backends.azureml_v1.run_status import metrics_from_run, state_from_details
from himl_tasks.backends.azureml_v1.schedules import (
    listed_schedules,
    put_schedule,
    remove_schedule,
)
from himl_tasks.backends.azureml_v1.service import AzureMLService, SdkService
from himl_tasks.backends.azureml_v1.submission import script_run_config
from himl_tasks.backends.azureml_v1.workspace import get_workspace
from himl_tasks.backends.base import Backend, check_run_id_argument, spec_of
from himl_tasks.datasets import DatasetConfig, ResolvedDataset
from himl_tasks.errors import (
    ConfigurationError,
    DatasetNotFoundError,
    InvalidInputError,
    RunNotFoundError,
)
from himl_tasks.job_spec import JobSpec
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
    write_most_recent_run,
)
from himl_tasks.secret_reference import secret_references
from himl_tasks.snapshot import ignore_rules
from himl_tasks.storage import Datastore
from himl_tasks.storage.folder_view import FolderView
from himl_tasks.sweeps import SweepSpec

LOG_FILES = ("user_logs/std_log.txt", "azureml-logs/70_driver_log.txt")


def refuse_secret_references(spec: JobSpec) -> None:
    """Refuses a spec whose variables name secrets: AzureML v1 would store their values.

    Raises:
        InvalidInputError: If an environment variable is a `SecretReference`.
    """
    referenced = secret_references(spec.environment_variables)
    if referenced:
        raise InvalidInputError(
            f"environment variable {', '.join(sorted(referenced))} is a SecretReference, "
            "which the AzureML v1 backend does not send (AzureML would store the value with "
            "the run): keep the secret in the workspace's Key Vault and read it in the job "
            "with Run.get_context().get_secret(name)"
        )


def run_id_for(submission_id: str) -> str:
    """The run id of a submission: the same id always names the same run."""
    return "himl_" + hashlib.sha256(submission_id.encode()).hexdigest()[:32]


class AzureMLV1Backend(Backend):
    """Runs jobs and keeps datasets in an AzureML workspace, through azureml-core.

    Beyond the `Backend` protocol, this backend alone offers `register_datastore` (a blob
    container, with its key or SAS) and `register_datastore_from_file`; their signatures are
    AzureML's, not shared with `LocalBackend.register_datastore`.

    Args:
        workspace: An `azureml.core.Workspace`; default: found by `get_workspace()`.
        service: The AzureML service calls (default: azureml-core's, for `workspace`).
        account_urls: Blob endpoints by storage account, for accounts not reached at their
            public name (private endpoints, emulators).
        storage_credential: An azure-identity credential for identity-based datastores.
        storage_options: Options for every `BlobDatastore` (concurrency, block size, retry).
    """

    name = "azureml_v1"
    max_poll_seconds = 15.0  # each state check is a service call
    run_file_folders = AZUREML_RUN_FILE_FOLDERS

    def __init__(
        self,
        workspace: Any = None,
        *,
        service: AzureMLService | None = None,
        account_urls: Mapping[str, str] | None = None,
        storage_credential: Any = None,
        **storage_options: Any,
    ) -> None:
        self.service = service or SdkService(get_workspace(workspace))
        self.workspace = self.service.workspace
        self._account_urls = dict(account_urls or {})
        self._storage_credential = storage_credential
        self._storage_options = storage_options
        self._stores: dict[str, Datastore] = {}
        self._runs: dict[str, Any] = {}

    def __repr__(self) -> str:
        return f"AzureMLV1Backend(workspace={self.workspace.name!r})"

    def workspace_key(self) -> str:
        """The workspace's subscription, resource group and name."""
        parts = (
            str(getattr(self.workspace, part, ""))
            for part in ("subscription_id", "resource_group", "name")
        )
        return "azureml_v1:" + "/".join(parts)

    # ---- datastores -----------------------------------------------------------------------

    def datastore(self, name: str = "") -> Datastore:
        """The datastore of that name ("" for the workspace's default), resolved once."""
        if name not in self._stores:
            self._stores[name] = blob_storage_for(
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
        from azureml.data.azure_storage_datastore import AzureBlobDatastore

        check_datastore_credentials(name, account_key, sas_token)
        definition = AzureBlobDatastore(
            self.workspace,
            name,
            container,
            account_name,
            sas_token=sas_token or None,
            account_key=account_key or None,
            protocol=protocol,
            endpoint=endpoint,
        )
        self.service.register_datastore(definition)
        self._stores.pop(name, None)
        return self.datastore(name)

    def register_datastore_from_file(self, path: Path = SEED_FILE) -> Datastore:
        """Registers the datastore a `.azureml/datastore.json` file defines; returns it."""
        seed = read_datastore_seed(path)
        return self.register_datastore(
            seed["name"],
            container=seed["container_name"],
            account_name=seed["account_name"],
            account_key=seed.get("account_key", ""),
            sas_token=seed.get("sas_token", ""),
            endpoint=seed.get("endpoint", "core.windows.net"),
            protocol=seed.get("protocol", "https"),
        )

    # ---- datasets -------------------------------------------------------------------------

    def resolve_dataset(self, config: DatasetConfig) -> ResolvedDataset:
        """Finds the registered dataset version the config names (latest unless `version`).

        A dataset that does not exist yet but whose folder exists in the datastore is created
        from that folder and registered, as hi-ml does.

        Raises:
            DatasetNotFoundError: No such dataset and no folder to create it from, or no such
                version.
        """
        return self._dataset(config)[1]

    def _dataset(self, config: DatasetConfig) -> tuple[Any, ResolvedDataset]:
        datastore_name = self.datastore(config.datastore).name
        found = self.service.dataset(config.name, config.version)
        if found is not None:
            tags = found.tags or {}
            made_by = tags.get("created_by_run")
            return found, ResolvedDataset(
                config.name,
                int(found.version),
                datastore_name,
                str(tags.get("himl_path", "")),
                None if made_by is None else str(made_by),
            )
        if config.version is not None:
            raise DatasetNotFoundError(
                f"no dataset '{config.name}' in workspace '{self.workspace.name}', so there is "
                f"no version {config.version} of it"
            )
        if not self.datastore(config.datastore).list(f"{config.name}/"):
            raise DatasetNotFoundError(
                f"no dataset '{config.name}' in workspace '{self.workspace.name}', and no "
                f"folder '{config.name}/' in datastore '{datastore_name}' to create it from"
            )
        return self._register(config.name, datastore_name, config.name, None)

    def _register_dataset_version(
        self, name: str, datastore: str, folder: str, created_by_run: str | None
    ) -> ResolvedDataset:
        return self._register(name, datastore, folder, created_by_run)[1]

    def _register(
        self, name: str, datastore: str, folder: str, created_by_run: str | None
    ) -> tuple[Any, ResolvedDataset]:
        aml_datastore = self.service.datastore(datastore)
        dataset = dataset_from_folder(aml_datastore, folder)
        tags = {"himl_path": folder}
        if created_by_run:
            tags["created_by_run"] = created_by_run
        registered = self.service.register_dataset(dataset, name, tags)
        return registered, ResolvedDataset(
            name, int(registered.version), aml_datastore.name, folder, created_by_run or None
        )

    def _fetch_dataset(
        self, config: DatasetConfig, resolved: ResolvedDataset, destination: Path
    ) -> bool:
        """Mounts the dataset, or has the SDK download one registered outside himl-tasks.

        Mounting (`use_mounting`) needs libfuse. A dataset registered elsewhere has no folder
        recorded with it: only the SDK knows its files.

        Raises:
            ConfigurationError: For mounting where libfuse is missing.
        """
        if config.use_mounting and not fuse_available():
            raise ConfigurationError(
                f"mounting dataset '{config.name}' needs libfuse, which this machine lacks; "
                "install it (Debian/Ubuntu: apt install fuse3 libfuse2), or set "
                "use_mounting=False to download the dataset instead"
            )
        if not config.use_mounting and resolved.path:
            return False
        dataset = self.service.dataset(resolved.name, resolved.version)
        if config.use_mounting:
            dataset.mount(str(destination)).start()
        else:
            dataset.download(target_path=str(destination), overwrite=False)
        return True

    # ---- submission -----------------------------------------------------------------------

    def _submit_plan(self, plan: RunPlan, submission_id: str | None) -> RunRef:
        """Submits the prepared job to its compute cluster; returns at once with its run.

        The plan's snapshot and input versions are submitted unchanged (`Backend.submit` made
        the plan, or was handed it).

        With `submission_id`, the run's id is derived from it (`run_id_for`): a run id is
        unique in a workspace and part of the request that creates the run, so a submission
        whose id already has a run returns that run, even when the submitter died before it
        heard back. (A tag alone would not do: `Experiment.submit` sets tags in a second
        request after the run exists, azureml/core/experiment.py, `run.set_tags(tags)`.) The
        id is also kept in the run's `himl_submission_id` tag, for people.
        """
        config, rules = self._prepare(plan)
        return self._send(plan, config, rules, submission_id)

    def find_submission(self, submission_id: str) -> RunRef | None:
        """The run submitted under `submission_id`, or None if there is none.

        A job's run is found by the id derived from the submission. A pipeline's run, whose
        id the service chooses, by the submission named in its description, among the
        pipeline runs of the experiment a small index file names (written into the artifact
        store before the pipeline is submitted, `_submission_index`): a submission that was
        never a pipeline costs one look at that file, not a search of every experiment.
        """
        found = self._job_submission(submission_id)
        if found is not None:
            return found
        experiment = kept_text(self._submission_index(), _index_name(submission_id))
        if experiment is None:
            return None
        return self._pipeline_submission(experiment.strip(), submission_id)

    def _submission_index(self) -> Datastore:
        """Where each pipeline submission id's experiment is noted, in the artifact store."""
        return FolderView(
            self.datastore(ARTIFACT_DATASTORE),
            "himl/pipeline_submissions/",
            name="pipeline submissions",
        )

    def _job_submission(self, submission_id: str) -> RunRef | None:
        try:
            return self.get_run_ref(run_id_for(submission_id))
        except RunNotFoundError:
            return None

    def _pipeline_submission(self, experiment: str, submission_id: str) -> RunRef | None:
        mark = f"({SUBMISSION_MARK}{submission_id})"
        for run in self.service.pipeline_runs(experiment):
            if str(getattr(run, "description", "") or "").endswith(mark):
                self._runs[run.id] = run
                return RunRef(
                    run.experiment.name, run.id, self.name, portal_url=run.get_portal_url()
                )
        return None

    def _submit_sweep_plan(
        self, plan: RunPlan, sweep: SweepSpec, submission_id: str | None
    ) -> RunRef:
        """Submits a HyperDrive sweep around the job; its trials are the run's children.

        With `submission_id`, the HyperDrive run's id is derived from it, as in `_submit_plan`.
        """
        config, rules = self._prepare(plan)
        return self._send(plan, hyperdrive_config(sweep, config), rules, submission_id)

    def check_sweep(self, sweep: SweepSpec) -> None:
        """HyperDrive offers every sampling and early termination policy a SweepSpec holds."""

    def check_hyperdrive(self, hyperdrive_config: Any) -> None:
        """Raises unless `hyperdrive_config` is a `HyperDriveConfig` (a check before side effects).

        Raises:
            InvalidInputError: For anything else.
        """
        from azureml.train.hyperdrive import HyperDriveConfig

        if not isinstance(hyperdrive_config, HyperDriveConfig):
            raise InvalidInputError(
                "hyperdrive_config must be an azureml.train.hyperdrive.HyperDriveConfig, not "
                f"{type(hyperdrive_config).__name__}; for a sweep on any backend give "
                "sweep=SweepSpec(...)"
            )

    def submit_hyperdrive(
        self, job: JobSpec | RunPlan, hyperdrive_config: Any, *, submission_id: str | None = None
    ) -> RunRef:
        """Submits the user's own `HyperDriveConfig` around the job, as hi-ml does.

        hi-ml puts the job's `ScriptRunConfig` into the config's private `_run_config`, in
        place of whatever the user built it with (hi-ml's examples give a placeholder,
        `ScriptRunConfig(source_directory="")`); so does this. The trials are the run's
        children. With `submission_id`, idempotent as `submit` is; the run's recovery id is
        written to `most_recent_run.txt` beside the script, as for any submission.

        Raises:
            InvalidInputError: If `hyperdrive_config` is not a `HyperDriveConfig`.
        """
        self.check_hyperdrive(hyperdrive_config)
        self._check_plan_workspace(job)
        found = self._submitted_before(submission_id)
        if found is None:
            plan = self._plan_of(job)
            config, rules = self._prepare(plan)
            # A private field, as hi-ml sets it (health_azure/himl.py, submit_to_azure_if_needed):
            # HyperDriveConfig has no public way to replace its run configuration.
            hyperdrive_config._run_config = config
            found = self._send(plan, hyperdrive_config, rules, submission_id)
        write_most_recent_run(spec_of(job).recovery_file_folder, found)
        return found

    def check_spec(self, spec: JobSpec) -> None:
        """Refuses secret references: AzureML would store their values with the run.

        Raises:
            InvalidInputError: A SecretReference among the environment variables.
        """
        refuse_secret_references(spec)

    def check_datastore(self, name: str) -> None:
        """Raises unless the workspace has the datastore (an output needs only AzureML's).

        Raises:
            DatastoreNotFoundError: No such datastore.
        """
        self.service.datastore(name)

    def check_compute(self, name: str) -> None:
        """Raises unless `name` is a compute cluster of the workspace.

        Raises:
            InvalidInputError: For "" (an AzureML job needs a cluster).
            ComputeNotFoundError: No such cluster.
        """
        if not name:
            raise InvalidInputError(
                "an AzureML job needs a compute cluster: set JobSpec.compute to its name"
            )
        self.service.check_compute(name)

    def _prepare(self, plan: RunPlan) -> tuple[Any, list[str]]:
        """The job's run configuration, and the ignore rules that select its snapshot."""
        spec = plan.spec
        outputs = [
            output_configuration(self.service.datastore(config.datastore), config, index)
            for index, config in enumerate(spec.output_datasets)
        ]
        inputs = [
            input_consumption(self._planned_dataset(resolved), config, index)
            for index, (config, resolved) in enumerate(
                zip(spec.input_datasets, plan.inputs, strict=True)
            )
        ]
        config = script_run_config(
            spec,
            plan.snapshot,
            environment=environment_for(spec, self.service, python_path=_python_path()),
            compute=spec.compute,
            inputs=inputs,
            outputs=outputs,
        )
        return config, self._ignore_rules(plan)

    def _planned_dataset(self, resolved: ResolvedDataset) -> Any:
        """The AzureML dataset of a version the plan resolved: that version, never "latest"."""
        found = self.service.dataset(resolved.name, resolved.version)
        if found is None:
            raise DatasetNotFoundError(
                f"dataset '{resolved.name}' version {resolved.version} is no longer in "
                f"workspace '{self.workspace.name}'"
            )
        return found

    def _send(
        self, plan: RunPlan, config: Any, rules: list[str], submission_id: str | None = None
    ) -> RunRef:
        spec, experiment = plan.spec, plan.experiment
        tags = default_tags(spec)
        run_id = None
        if submission_id is not None:
            tags[SUBMISSION_TAG] = submission_id
            run_id = run_id_for(submission_id)
        with amlignore_for_submission(spec.snapshot_root, rules):
            try:
                run = self.service.submit(experiment, config, tags, run_id=run_id)
            except Exception:
                # The same submission made at the same moment elsewhere: the service refused
                # a second run of that id, and the first one is the answer.
                found = self.find_submission(submission_id) if submission_id else None
                if found is None:
                    raise
                return found
        if spec.display_name:
            run.display_name = spec.display_name
        self._runs[run.id] = run
        return RunRef(experiment, run.id, self.name, portal_url=run.get_portal_url())

    # ---- runs -----------------------------------------------------------------------------

    def get_run_ref(self, recovery_id: str) -> RunRef:
        """Finds a run by `experiment:run_id` or bare `run_id`.

        Raises:
            RunNotFoundError: If there is no such run (or it is in another experiment).
        """
        experiment, run_id = parse_recovery_id(recovery_id)
        run = self.service.run(run_id)
        if experiment and run.experiment.name != experiment:
            raise RunNotFoundError(
                f"run '{run_id}' is in experiment '{run.experiment.name}', not '{experiment}'"
            )
        return RunRef(run.experiment.name, run.id, self.name, portal_url=run.get_portal_url())

    def list_runs(self, experiment: str | None = None) -> list[ListedRun]:
        """The workspace's runs (children included), oldest first: all, or one experiment's.

        One listing call per experiment (azureml-core's `Experiment.get_runs`), then each run's
        details (its status and times), as `get_state` reads them.
        """
        listed = []
        for run, parent_run_id in reversed(self.service.list_runs(experiment)):
            self._runs[run.id] = run
            ref = RunRef(run.experiment.name, run.id, self.name, portal_url=run.get_portal_url())
            listed.append(
                ListedRun(
                    state=state_from_details(ref, run.get_details(), ref.portal_url),
                    display_name=str(getattr(run, "display_name", "") or run.id),
                    tags={str(k): str(v) for k, v in (run.get_tags() or {}).items()},
                    parent_run_id=parent_run_id,
                )
            )
        return listed

    def submitted_spec(self, ref: RunRef) -> JobSpec:
        """Always refuses: AzureML does not keep the job spec a run was made of.

        An AzureML run keeps its snapshot and run configuration, not the himl-tasks job spec
        (datasets, environment, compute as written).

        Raises:
            InvalidInputError: Always, saying how to resubmit instead.
        """
        self._run(ref)  # a missing run is RunNotFoundError, as for every other call
        raise InvalidInputError(
            f"AzureML does not keep the job spec of run '{ref}', so it cannot be resubmitted "
            f"from here: submit the job again with resume_from='{ref.recovery_id}' "
            "(JobSpec.resuming_from, or run_to_completion, which resubmits lost runs itself)"
        )

    def dataset_names(self) -> list[str]:
        """The names of the workspace's registered datasets, sorted."""
        return sorted(self.service.dataset_names())

    def datastore_names(self) -> list[str]:
        """The names of the workspace's datastores, sorted."""
        return sorted(self.service.datastore_names())

    def get_state(self, ref: RunRef) -> RunState:
        """The run's state, from its details in AzureML."""
        run = self._run(ref)
        return state_from_details(ref, run.get_details(), run.get_portal_url())

    def read_log(self, ref: RunRef, offset: int) -> bytes:
        """The run's driver log from byte `offset` on (empty while there is none yet).

        The log is `user_logs/std_log.txt`, else `azureml-logs/70_driver_log.txt`, fetched
        from the artifact store through the transfer engine into a scratch folder.
        """
        files = self.run_files(ref)
        name = next((name for name in LOG_FILES if files.exists(name)), None)
        if name is None:
            return b""
        with tempfile.TemporaryDirectory(prefix="himl-log-") as scratch:
            files.download(name, scratch, missing_ok=True)
            log = Path(scratch) / name
            if not log.exists():
                return b""
            with log.open("rb") as source:
                source.seek(offset)
                return source.read()

    def cancel(self, ref: RunRef) -> None:
        """Asks AzureML to cancel the run (no effect on a finished one).

        Canceling a pipeline run cancels its running steps: `PipelineRun.cancel` cancels the
        pipeline's graph in the service, whose steps still to run never start.
        """
        if not self.get_state(ref).is_terminal:
            self._run(ref).cancel()

    def get_metrics(self, ref: RunRef) -> list[Metric]:
        """The run's metrics.

        AzureML v1 does not say when each value was logged: the run's end, else its start,
        is used as their time.
        """
        run = self._run(ref)
        state = state_from_details(ref, run.get_details(), "")
        logged_at = state.ended_at or state.started_at or datetime.datetime.now(datetime.UTC)
        return metrics_from_run(run.get_metrics(), logged_at)

    def run_outputs(self, ref: RunRef) -> list[ResolvedDataset]:
        """The output dataset versions a completed run registered, in the job's order.

        AzureML registers them on completion and lists each in the run's details
        (`outputDatasets`: the output's name, `OUTPUT_<i>`, and the version registered); the
        dataset names are in the run's `himl_outputs` tag, in the same order. The versions
        are the run's own, whatever later runs registered since.
        """
        run = self._run(ref)
        details = run.get_details()
        if details.get("status") != "Completed":
            return []
        reused = reused_run_id(run)
        if reused is not None:  # a reused pipeline step's outputs are the earlier run's
            return self.run_outputs(self.get_run_ref(reused))
        names = [name for name in str(run.get_tags().get(OUTPUTS_TAG, "")).split(",") if name]
        found: dict[str, tuple[str, int]] = {}
        for entry in details.get("outputDatasets") or []:
            output = str((entry.get("outputDetails") or {}).get("outputName", ""))
            version = (entry.get("identifier") or {}).get("registeredVersion")
            # A pipeline step's run has no himl_outputs tag (its steps are made by the
            # service): the dataset AzureML's get_details attaches names it.
            index = int(output.removeprefix("OUTPUT_")) if output.startswith("OUTPUT_") else -1
            name = names[index] if 0 <= index < len(names) else _dataset_name(entry)
            if version is not None and name:
                found[output] = (name, int(version))
        return [
            self.resolve_dataset(DatasetConfig(name, version=version))
            for output, (name, version) in sorted(found.items(), key=_by_index)
        ]

    def run_inputs(self, ref: RunRef) -> list[ResolvedDataset]:
        """The dataset versions the run read, in its inputs' order (`INPUT_0`, ...).

        From the run's details, `inputDatasets`: each entry's dataset (the registered
        version AzureML resolved it to, with its name and version) and `consumptionDetails`
        (`inputName`), as `Run.get_details()` gives them (azureml/core/run.py;
        azureml/data/_dataset_lineage.py). A reused pipeline step read what the run it
        reused read.
        """
        run = self._run(ref)
        reused = reused_run_id(run)
        if reused is not None:
            return self.run_inputs(self.get_run_ref(reused))
        found: dict[str, tuple[str, int]] = {}
        for entry in run.get_details().get("inputDatasets") or []:
            dataset = entry.get("dataset")
            name = str((entry.get("consumptionDetails") or {}).get("inputName", ""))
            if getattr(dataset, "name", None) and getattr(dataset, "version", None) is not None:
                found[name] = (str(dataset.name), int(dataset.version))
        return [
            self.resolve_dataset(DatasetConfig(name, version=version))
            for _, (name, version) in sorted(found.items(), key=_by_index)
        ]

    def child_runs(self, ref: RunRef) -> list[RunRef]:
        """The run's children (a sweep's trials, a pipeline run's step runs)."""
        return [
            RunRef(ref.experiment, child.id, self.name, portal_url=child.get_portal_url())
            for child in self._run(ref).get_children()
        ]

    def run_tags(self, ref: RunRef) -> dict[str, str]:
        """The run's tags, as the service has them now."""
        return {str(k): str(v) for k, v in (self._run(ref).get_tags() or {}).items()}

    def run_object(self, ref: RunRef) -> Any:
        """The run's `azureml.core.Run` itself: hi-ml users' code calls its methods."""
        return self._run(ref)

    def _run(self, ref: RunRef) -> Any:
        if ref.run_id not in self._runs:
            self._runs[ref.run_id] = self.service.run(ref.run_id)
        return self._runs[ref.run_id]

    def run_files(self, ref: RunRef) -> Datastore:
        """The run's files, where AzureML keeps them in the workspace's artifact store."""
        return FolderView(
            self.datastore(ARTIFACT_DATASTORE),
            run_files_folder(ref.run_id),
            name=f"run {ref.run_id}",
        )

    # ---- pipelines ------------------------------------------------------------------------

    def submit_pipeline(
        self, pipeline: PipelineSpec, *, submission_id: str | None = None
    ) -> RunRef:
        """Submits the pipeline as an azureml-pipeline-core `Pipeline` of `PythonScriptStep`s.

        Each step is made of its job as a single job's run configuration is (`_prepare`).
        Existing datasets are resolved once, before anything is sent, and every step reads
        those versions; a step's outputs are registered on completion and handed to the
        steps that read them. AzureML runs the graph: a step starts once its upstream steps
        completed, a failed step stops its dependants, and a step whose script, arguments,
        snapshot and inputs equal an earlier run's (with `allow_reuse`) reuses that run.

        The pipeline is kept with its run (`submitted_pipeline`). With `submission_id`,
        idempotent: the id travels in the pipeline run's description, in the request that
        creates the run, and a submission whose id already has a pipeline run returns it.

        Raises:
            InvalidInputError: Not a `PipelineSpec`, an unusable submission id, or a step that
                AzureML v1 cannot run (a module; two steps sharing a snapshot folder with
                different ignore rules; a job refused as a single job would be).
            ComputeNotFoundError, DatastoreNotFoundError, DatasetNotFoundError: As `plan`.
        """
        if not isinstance(pipeline, PipelineSpec):
            raise InvalidInputError(f"a pipeline is a PipelineSpec, not {pipeline!r}")
        check_run_id_argument("submission_id", submission_id)
        experiment = pipeline.experiment_name()
        if submission_id is not None:
            found = self._pipeline_submission(experiment, submission_id)
            if found is not None:
                return self._keep_pipeline(found, pipeline)
        planned = self._planned_pipeline(pipeline)
        steps = self._script_steps(planned)
        tags = {**pipeline.tags, PIPELINE_TAG: pipeline.name}
        if submission_id is not None:
            tags[SUBMISSION_TAG] = submission_id
        description = submission_description(pipeline, submission_id)
        if submission_id is not None:
            keep_text(self._submission_index(), _index_name(submission_id), experiment)
        with planned.snapshots():
            try:
                run = self.service.submit_pipeline(experiment, steps, description, tags)
            except Exception:
                # The answer was lost after the service made the run: the run is the answer.
                found = (
                    self._pipeline_submission(experiment, submission_id)
                    if submission_id is not None
                    else None
                )
                if found is None:
                    raise
                return self._keep_pipeline(found, pipeline)
        if pipeline.display_name:
            run.display_name = pipeline.display_name
        self._runs[run.id] = run
        ref = RunRef(experiment, run.id, self.name, portal_url=run.get_portal_url())
        return self._keep_pipeline(ref, pipeline)

    def _keep_pipeline(self, ref: RunRef, pipeline: PipelineSpec) -> RunRef:
        """Keeps the pipeline in its run's folder (unless it is there): see `PIPELINE_FILE`."""
        files = self.run_files(ref)
        if kept_text(files, PIPELINE_FILE) is None:
            keep_text(files, PIPELINE_FILE, pipeline.to_json())
        return ref

    def _planned_pipeline(self, pipeline: PipelineSpec) -> _PlannedPipeline:
        """The pipeline's steps planned, every check made before any side effect.

        Every step is planned (checked, its snapshot selected) before the existing datasets
        are resolved: resolving a dataset that is only a folder registers its version 1.
        """
        check_pipeline_for_v1(pipeline)
        ordered = pipeline.ordered_steps
        plans = list(self.plan_steps(pipeline).values())
        rules = {
            step.name: (plan.spec.snapshot_root, self._ignore_rules(plan))
            for step, plan in zip(ordered, plans, strict=True)
        }
        check_shared_snapshot_roots(rules)
        existing = {config: self._dataset(config) for config in pipeline.existing_inputs}
        return _PlannedPipeline(pipeline, plans, list(rules.values()), existing)

    def _script_steps(self, planned: _PlannedPipeline) -> list[Any]:
        """The planned steps as `PythonScriptStep`s (their environments registered if new)."""
        ordered = planned.pipeline.ordered_steps
        existing = planned.existing
        written: dict[str, Any] = {}
        steps: dict[str, Any] = {}
        for step, plan in zip(ordered, planned.plans, strict=True):
            config, _ = self._prepare(plan)
            outputs = list((config.run_config.output_data or {}).values())
            written.update(zip((c.name for c in step.job.output_datasets), outputs, strict=True))
            inputs = [
                handed_on_input(written[c.name], c, index)
                if c not in existing
                else input_consumption(existing[c][0], c, index)
                for index, c in enumerate(step.job.input_datasets)
            ]
            steps[step.name] = python_script_step(step, config, inputs, outputs)
        for step in ordered:
            for other in step.after:
                steps[step.name].run_after(steps[other])
        return [steps[s.name] for s in ordered]

    def _ignore_rules(self, plan: RunPlan) -> list[str]:
        spec = plan.spec
        return ignore_rules(spec.snapshot_root, spec.ignored_folders) + (
            plan.snapshot.extra_ignore_rules
        )

    def submitted_pipeline(self, ref: RunRef) -> PipelineSpec:
        """The pipeline kept with the pipeline run when it was submitted.

        Raises:
            RunNotFoundError: No such run.
            InvalidInputError: The run is not a pipeline run himl-tasks submitted.
        """
        self._run(ref)
        text = kept_text(self.run_files(ref), PIPELINE_FILE)
        if text is None:
            raise InvalidInputError(
                f"run '{ref}' is not a pipeline run submitted by himl-tasks (it keeps no "
                f"{PIPELINE_FILE}): give the recovery id of a pipeline run"
            )
        return PipelineSpec.from_json(text)

    def pipeline_steps(self, ref: RunRef) -> list[StepRun]:
        """The pipeline run's steps in the pipeline's order, from its child runs.

        A step run is the child run named after its step (`step_name`); a step with no child
        run has not started. A reused step's run names the run it reused in its
        `azureml.reusedrunid` property (see `pipelines`).

        Raises:
            RunNotFoundError: No such run.
            InvalidInputError: The run is not a pipeline run himl-tasks submitted.
        """
        pipeline = self.submitted_pipeline(ref)
        children: dict[str, Any] = {}
        for child in self._run(ref).get_children():
            self._runs[child.id] = child
            children.setdefault(step_name(child), child)
        steps = []
        for name in pipeline.order:
            child = children.get(name)
            if child is None:
                steps.append(StepRun(name, None))
                continue
            run = RunRef(ref.experiment, child.id, self.name, portal_url=child.get_portal_url())
            reused = reused_run_id(child)
            steps.append(StepRun(name, run, None if reused is None else self.get_run_ref(reused)))
        return steps

    def publish_pipeline(
        self, pipeline: PipelineSpec, *, description: str = ""
    ) -> PublishedPipeline:
        """Publishes the pipeline under the `PipelineEndpoint` of its name, as its default.

        Versions are 1, 2, ... (each `PublishedPipeline`'s version). The existing datasets the
        steps read are resolved now, and the published pipeline reads those versions (a v1
        step's registered-dataset input names one version): to have a schedule read newer
        ones, publish again, and the new version becomes the endpoint's default, which the
        schedule submits. A pipeline whose content digest (its JSON, its steps' snapshot
        files, those versions) equals the latest version's gives that version again (see
        `publishing`).

        Raises:
            InvalidInputError: As `submit_pipeline`, before anything is published.
        """
        if not isinstance(pipeline, PipelineSpec):
            raise InvalidInputError(f"a pipeline is a PipelineSpec, not {pipeline!r}")
        experiment = pipeline.experiment_name()
        planned = self._planned_pipeline(pipeline)
        inputs = [resolved for _, resolved in planned.existing.values()]
        snapshots = {
            step.name: plan.snapshot
            for step, plan in zip(pipeline.ordered_steps, planned.plans, strict=True)
        }
        digest = published_digest(pipeline, snapshots, inputs)
        published = published_versions(self.service, pipeline.name)
        if published:
            latest, mark = published[-1]
            if mark.digest == digest:
                return self._published_pipeline(pipeline.name, latest, mark.description)
        version = str(int(published[-1][0].version) + 1 if published else 1)
        text = published_description(description, digest, experiment)
        steps = self._script_steps(planned)
        with planned.snapshots():
            made = self.service.publish_pipeline(pipeline.name, steps, text, version)
        self.service.add_to_endpoint(pipeline.name, made, description)
        keep_text(self._published_files(pipeline.name, version), PIPELINE_FILE, pipeline.to_json())
        return self._published_pipeline(pipeline.name, made, description)

    def published_pipelines(self, name: str | None = None) -> list[PublishedPipeline]:
        """The pipelines himl-tasks published (under `name`, if given), oldest version first."""
        endpoints = [e.name for e in self.service.pipeline_endpoints()]
        return [
            self._published_pipeline(endpoint, published, mark.description)
            for endpoint in sorted(endpoints)
            if name is None or endpoint == name
            for published, mark in published_versions(self.service, endpoint)
        ]

    def submit_published_pipeline(
        self, name: str, *, version: int | None = None, submission_id: str | None = None
    ) -> RunRef:
        """Submits a published pipeline (the latest version unless `version`).

        With `submission_id`, a submission whose id already has a run returns it (found by
        the run's `himl_submission_id` tag: `Experiment.submit` sets tags after the run is
        made, so a submitter that dies in between is not covered).

        Raises:
            PipelineNotFoundError: Nothing published under that name (or that version).
            InvalidInputError: A version that is not a whole number of 1 or more.
        """
        check_run_id_argument("submission_id", submission_id)
        published, mark = published_version(
            self.service, name, checked_version(version), self.workspace.name
        )
        if submission_id is not None:
            for run in self.service.pipeline_runs(mark.experiment):
                if (run.get_tags() or {}).get(SUBMISSION_TAG) == submission_id:
                    return self.get_run_ref(run.id)
        tags = {PIPELINE_TAG: name}
        if submission_id is not None:
            tags[SUBMISSION_TAG] = submission_id
        run = self.service.submit_published(published, mark.experiment, tags)
        self._runs[run.id] = run
        ref = RunRef(mark.experiment, run.id, self.name, portal_url=run.get_portal_url())
        text = kept_text(self._published_files(name, str(published.version)), PIPELINE_FILE)
        if text is not None:
            keep_text(self.run_files(ref), PIPELINE_FILE, text)
        return ref

    def schedule_pipeline(self, schedule: PipelineSchedule) -> PipelineSchedule:
        """Creates (or updates by name) a v1 `Schedule` on the pipeline's endpoint.

        Each firing submits the endpoint's default version, the latest one published. The
        cron expression becomes a `ScheduleRecurrence` (see `recurrence`); one v1 cannot
        express is refused before anything is changed.

        Raises:
            InvalidInputError: A cron expression or time zone v1 cannot express.
            PipelineNotFoundError: Nothing is published under the schedule's pipeline name.
        """
        recurrence = recurrence_for(schedule)
        _, mark = published_version(self.service, schedule.pipeline, None, self.workspace.name)
        endpoint = endpoint_named(self.service, schedule.pipeline)
        made = put_schedule(self.service, schedule, recurrence, endpoint, mark.experiment)
        return dataclasses.replace(schedule, id=made)

    def pipeline_schedules(self) -> list[PipelineSchedule]:
        """The schedules himl-tasks made and did not remove, by name."""
        return listed_schedules(self.service)

    def remove_pipeline_schedule(self, name: str) -> None:
        """Disables the schedule and marks it removed: AzureML v1 cannot delete a schedule.

        It never fires again and `pipeline_schedules` no longer lists it; scheduling the
        name again brings it back. Removing a schedule that does not exist does nothing.
        """
        remove_schedule(self.service, name)

    def _published_pipeline(self, name: str, published: Any, description: str) -> PublishedPipeline:
        return PublishedPipeline(
            name, int(published.version), str(published.id), str(published.endpoint), description
        )

    def _published_files(self, name: str, version: str) -> Datastore:
        """Where the pipeline of a published version is kept, in the artifact store."""
        return FolderView(
            self.datastore(ARTIFACT_DATASTORE),
            f"himl/published_pipelines/{name}/{version}/",
            name=f"published pipeline {name} {version}",
        )


@dataclasses.dataclass(frozen=True)
class _PlannedPipeline:
    """A pipeline checked for AzureML v1: its steps' plans, snapshot rules, existing inputs."""

    pipeline: PipelineSpec
    plans: list[RunPlan]
    snapshot_rules: list[tuple[Path, list[str]]]
    existing: dict[DatasetConfig, tuple[Any, ResolvedDataset]]

    @contextlib.contextmanager
    def snapshots(self) -> Iterator[None]:
        """Each step's `.amlignore` in place while AzureML takes the snapshots."""
        with contextlib.ExitStack() as stack:
            for root, rules in dict(self.snapshot_rules).items():
                stack.enter_context(amlignore_for_submission(root, rules))
            yield


def _index_name(submission_id: str) -> str:
    return run_id_for(submission_id) + ".txt"


def _dataset_name(entry: dict[str, Any]) -> str:
    return str(getattr(entry.get("dataset"), "name", "") or "")


def _by_index(item: tuple[str, Any]) -> tuple[int, str]:
    """Orders `INPUT_<i>` / `OUTPUT_<i>` names by their index."""
    digits = item[0].rpartition("_")[2]
    return (int(digits) if digits.isdigit() else 1 << 30, item[0])


def fuse_available() -> bool:
    """True where libfuse can be loaded (what mounting a dataset needs)."""
    return any(ctypes.util.find_library(name) for name in ("fuse", "fuse3"))


def _python_path() -> str:
    return os.environ.get("PYTHONPATH", "")
