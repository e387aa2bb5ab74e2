"""The AzureML backend on azureml-core (SDK v1): what users run in production."""

from __future__ import annotations

import ctypes.util
import datetime
import hashlib
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from himl_tasks.backends.azureml_common.amlignore import amlignore_for_submission
from himl_tasks.backends.azureml_common.artifact_store import (
    ARTIFACT_DATASTORE,
    AZUREML_RUN_FILE_FOLDERS,
    run_files_folder,
)
from himl_tasks.backends.azureml_common.datastore_credentials import check_datastore_credentials
from himl_tasks.backends.azureml_common.tags import OUTPUTS_TAG, SUBMISSION_TAG, default_tags
from himl_tasks.backends.azureml_v1.datasets import (
    dataset_from_folder,
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
from himl_tasks.backends.azureml_v1.run_status import metrics_from_run, state_from_details
from himl_tasks.backends.azureml_v1.service import AzureMLService, SdkService
from himl_tasks.backends.azureml_v1.submission import script_run_config
from himl_tasks.backends.azureml_v1.workspace import get_workspace
from himl_tasks.backends.base import Backend, spec_of
from himl_tasks.datasets import DatasetConfig, ResolvedDataset
from himl_tasks.errors import (
    ConfigurationError,
    DatasetNotFoundError,
    InvalidInputError,
    RunNotFoundError,
)
from himl_tasks.job_spec import JobSpec
from himl_tasks.job_variables import azureml_output_name
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
        """The run submitted under `submission_id`, or None if there is none."""
        try:
            return self.get_run_ref(run_id_for(submission_id))
        except RunNotFoundError:
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
        rules = (
            ignore_rules(spec.snapshot_root, spec.ignored_folders)
            + plan.snapshot.extra_ignore_rules
        )
        return config, rules

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
        """Asks AzureML to cancel the run (no effect on a finished one)."""
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
        names = [name for name in str(run.get_tags().get(OUTPUTS_TAG, "")).split(",") if name]
        versions: dict[str, int] = {}
        for entry in details.get("outputDatasets") or []:
            output = str((entry.get("outputDetails") or {}).get("outputName", ""))
            version = (entry.get("identifier") or {}).get("registeredVersion")
            if version is not None:
                versions[output] = int(version)
        return [
            self.resolve_dataset(DatasetConfig(name, version=versions[azureml_output_name(i)]))
            for i, name in enumerate(names)
            if azureml_output_name(i) in versions
        ]

    def child_runs(self, ref: RunRef) -> list[RunRef]:
        """The run's children (a sweep's trials)."""
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


def fuse_available() -> bool:
    """True where libfuse can be loaded (what mounting a dataset needs)."""
    return any(ctypes.util.find_library(name) for name in ("fuse", "fuse3"))


def _python_path() -> str:
    return os.environ.get("PYTHONPATH", "")
