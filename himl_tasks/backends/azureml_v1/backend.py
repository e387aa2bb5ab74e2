"""The AzureML backend on azureml-core (SDK v1): what users run in production."""

from __future__ import annotations

import ctypes.util
import datetime
import hashlib
import os
import shutil
import tempfile
import weakref
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

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
from himl_tasks.backends.azureml_v1.submission import (
    OUTPUTS_TAG,
    amlignore_for_submission,
    default_tags,
    script_run_config,
)
from himl_tasks.backends.azureml_v1.workspace import get_workspace
from himl_tasks.backends.base import Backend
from himl_tasks.backends.planning import plan_run
from himl_tasks.backends.run_files import RUN_FILE_FOLDERS, download_run_files, list_run_files
from himl_tasks.backends.watching import follow_lines, tail_reader, wait_until_terminal
from himl_tasks.datasets import DatasetConfig, ResolvedDataset, folder_to_register
from himl_tasks.errors import (
    ConfigurationError,
    DatasetNotFoundError,
    InvalidInputError,
    RunNotFoundError,
)
from himl_tasks.job_spec import JobSpec
from himl_tasks.run_plan import RunPlan
from himl_tasks.runs import Metric, RunRef, RunState, split_recovery_id, write_most_recent_run
from himl_tasks.secret_reference import secret_references
from himl_tasks.snapshot import Snapshot, ignore_rules
from himl_tasks.storage import Datastore, TransferReport
from himl_tasks.storage.folder_view import FolderView
from himl_tasks.sweeps import SweepSpec

ARTIFACT_DATASTORE = "workspaceartifactstore"
AZUREML_RUN_FILE_FOLDERS = (*RUN_FILE_FOLDERS, "user_logs/", "system_logs/")
LOG_FILES = ("user_logs/std_log.txt", "azureml-logs/70_driver_log.txt")
SUBMISSION_TAG = "himl_submission_id"


def _refuse_secret_references(spec: JobSpec) -> None:
    referenced = secret_references(spec.environment_variables)
    if referenced:
        raise InvalidInputError(
            f"environment variable {', '.join(sorted(referenced))} is a SecretReference, "
            "which the AzureML v1 backend does not send (AzureML would store the value with "
            "the run): keep the secret in the workspace's Key Vault and read it in the job "
            "with Run.get_context().get_secret(name)"
        )


def _check_entry_script(spec: JobSpec, snapshot: Snapshot) -> None:
    """Refuses a script that is missing, outside the snapshot or excluded from it."""
    if spec.script_path is not None:
        snapshot.entry_script(spec.script_path)


def run_id_for(submission_id: str) -> str:
    """The run id of a submission: the same id always names the same run."""
    return "himl_" + hashlib.sha256(submission_id.encode()).hexdigest()[:32]


def run_files_folder(run_id: str) -> str:
    """Where AzureML keeps a run's files in the workspace's artifact store."""
    return f"ExperimentRun/dcid.{run_id}/"


class AzureMLV1Backend:
    """Runs jobs and keeps datasets in an AzureML workspace, through azureml-core.

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

        if bool(account_key) == bool(sas_token):
            raise ConfigurationError(
                f"datastore '{name}': give exactly one of account_key and sas_token"
            )
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
            path = str((found.tags or {}).get("himl_path", ""))
            return found, ResolvedDataset(config.name, int(found.version), datastore_name, path)
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

    def register_dataset(
        self, name: str, datastore: str, path: str, *, created_by_run: str | None = None
    ) -> ResolvedDataset:
        """Registers the files under `path` in a datastore as the next version of a dataset.

        Raises:
            InvalidInputError: If the datastore holds no files under `path`.
        """
        store = self.datastore(datastore)
        folder = folder_to_register(name, store, path)
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
            name, int(registered.version), aml_datastore.name, folder
        )

    def local_dataset_folder(self, config: DatasetConfig, destination: Path) -> Path:
        """A dataset's files on this machine, for a script that runs outside AzureML.

        `local_folder` is used when given. Otherwise the dataset is downloaded into
        `destination` (through the transfer engine, with checksums), or mounted there when
        `use_mounting` is set, which needs libfuse.

        Raises:
            ConfigurationError: For mounting where libfuse is missing.
            DatasetNotFoundError: If the dataset does not exist.
        """
        if config.local_folder is not None:
            return config.local_folder
        if config.use_mounting and not fuse_available():
            raise ConfigurationError(
                f"mounting dataset '{config.name}' needs libfuse, which this machine lacks; "
                "install it (Debian/Ubuntu: apt install fuse3 libfuse2), or set "
                "use_mounting=False to download the dataset instead"
            )
        dataset, resolved = self._dataset(config)
        if config.use_mounting:
            dataset.mount(str(destination)).start()
            return destination
        if not resolved.path:  # registered elsewhere: only the SDK knows its files
            dataset.download(target_path=str(destination), overwrite=False)
            return destination
        view = FolderView(self.datastore(config.datastore), resolved.path)
        view.download("", destination, validate_checksum=True)
        return destination

    # ---- submission -----------------------------------------------------------------------

    def plan(self, spec: JobSpec) -> RunPlan:
        """Prepares a job once: checks it, selects its snapshot, resolves its inputs.

        Raises:
            InvalidInputError: No compute cluster named, a secret reference (which this
                backend does not send), or an unusable script.
            SnapshotTooLargeError: The snapshot is over AzureML's limits.
            ComputeNotFoundError: The cluster does not exist.
            DatastoreNotFoundError: A dataset names an unknown datastore.
            DatasetNotFoundError: An input dataset or version does not exist.
        """
        return plan_run(
            self,
            spec,
            check_spec=_refuse_secret_references,
            # An output needs only the AzureML datastore it is written to.
            find_datastore=self.service.datastore,
            check_snapshot=_check_entry_script,
        )

    def submit(self, job: JobSpec | RunPlan, *, submission_id: str | None = None) -> RunRef:
        """Submits the job to its compute cluster; returns at once with its run.

        A `JobSpec` is planned first (`plan`); a `RunPlan` is submitted as it was prepared,
        its snapshot and input versions unchanged.

        With `submission_id`, the run's id is derived from it (`run_id_for`): a run id is
        unique in a workspace and part of the request that creates the run, so a submission
        whose id already has a run returns that run, even when the submitter died before it
        heard back. (A tag alone would not do: `Experiment.submit` sets tags in a second
        request after the run exists, azureml/core/experiment.py, `run.set_tags(tags)`.) The
        id is also kept in the run's `himl_submission_id` tag, for people.

        Raises:
            InvalidInputError: No compute cluster named, or the script is unusable.
            SnapshotTooLargeError: The snapshot is over AzureML's limits.
            ComputeNotFoundError: The cluster does not exist.
            DatasetNotFoundError: An input dataset or version does not exist.
            ConfigurationError: No conda file, or an unknown registered environment.
        """
        if submission_id is not None:
            found = self.find_submission(submission_id)
            if found is not None:
                spec = job.spec if isinstance(job, RunPlan) else job
                write_most_recent_run(spec.recovery_file_folder, found)
                return found
        plan = job if isinstance(job, RunPlan) else self.plan(job)
        config, rules = self._prepare(plan)
        return self._send(plan, config, rules, submission_id)

    def find_submission(self, submission_id: str) -> RunRef | None:
        """The run submitted under `submission_id`, or None if there is none."""
        try:
            return self.get_run_ref(run_id_for(submission_id))
        except RunNotFoundError:
            return None

    def submit_sweep(
        self, job: JobSpec | RunPlan, sweep: SweepSpec, *, submission_id: str | None = None
    ) -> RunRef:
        """Submits a HyperDrive sweep around the job; its trials are the run's children.

        With `submission_id`, the HyperDrive run's id is derived from it, as in `submit`.
        """
        if submission_id is not None:
            found = self.find_submission(submission_id)
            if found is not None:
                return found
        plan = job if isinstance(job, RunPlan) else self.plan(job)
        config, rules = self._prepare(plan)
        return self._send(plan, hyperdrive_config(sweep, config), rules, submission_id)

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
            for index, config in enumerate(spec.outputs)
        ]
        inputs = [
            input_consumption(self._planned_dataset(resolved), config, index)
            for index, (config, resolved) in enumerate(zip(spec.inputs, plan.inputs, strict=True))
        ]
        config = script_run_config(
            spec,
            plan.snapshot,
            environment=environment_for(spec, self.service, python_path=_python_path()),
            compute=spec.compute,
            inputs=inputs,
            outputs=outputs,
        )
        rules = ignore_rules(spec.root, spec.ignored_folders) + plan.snapshot.extra_ignore_rules
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
        with amlignore_for_submission(spec.root, rules):
            try:
                run = self.service.submit(experiment, config, tags, run_id=run_id)
            except Exception:
                # The same submission made at the same moment elsewhere: the service refused
                # a second run of that id, and the first one is the answer.
                found = self.find_submission(submission_id) if submission_id else None
                if found is None:
                    raise
                write_most_recent_run(spec.recovery_file_folder, found)
                return found
        if spec.display_name:
            run.display_name = spec.display_name
        self._runs[run.id] = run
        ref = RunRef(experiment, run.id, self.name, portal_url=run.get_portal_url())
        write_most_recent_run(spec.recovery_file_folder, ref)
        return ref

    # ---- runs -----------------------------------------------------------------------------

    def get_run_ref(self, recovery_id: str) -> RunRef:
        """Finds a run by `experiment:run_id` or bare `run_id`.

        Raises:
            RunNotFoundError: If there is no such run (or it is in another experiment).
        """
        experiment, run_id = split_recovery_id(recovery_id)
        run = self.service.run(run_id)
        if experiment and run.experiment.name != experiment:
            raise RunNotFoundError(
                f"run '{run_id}' is in experiment '{run.experiment.name}', not '{experiment}'"
            )
        return RunRef(run.experiment.name, run.id, self.name, portal_url=run.get_portal_url())

    def get_state(self, ref: RunRef) -> RunState:
        """The run's state, from its details in AzureML."""
        run = self._run(ref)
        return state_from_details(ref, run.get_details(), run.get_portal_url())

    def wait(self, ref: RunRef, *, timeout: float = 7 * 86400, poll: float = 10) -> RunState:
        """Waits until the run ends; returns its final state.

        Raises:
            TimeoutError: If it has not ended after `timeout` seconds.
        """
        return wait_until_terminal(self.get_state, ref, timeout=timeout, poll=poll)

    def log_reader(self, ref: RunRef) -> Callable[[], bytes]:
        """A function returning what the run's driver log gained since its last call.

        The log (`user_logs/std_log.txt`, else `azureml-logs/70_driver_log.txt`) is fetched
        from the artifact store when it changed, into a scratch folder removed with the reader.
        """
        files = self._run_files(ref)
        scratch = Path(tempfile.mkdtemp(prefix="himl-log-"))
        log_name: str | None = None
        tail: Callable[[], bytes] = bytes

        def read_new() -> bytes:
            nonlocal log_name, tail
            if log_name is None:
                log_name = next((name for name in LOG_FILES if files.exists(name)), None)
                if log_name is None:
                    return b""
                tail = tail_reader(scratch / log_name)
            files.download(log_name, scratch, overwrite=True, missing_ok=True)
            return tail()

        weakref.finalize(read_new, shutil.rmtree, scratch, True)
        return read_new

    def iter_logs(self, ref: RunRef, *, follow: bool = False, poll: float = 5) -> Iterator[str]:
        """Yields the lines of the run's driver log; with `follow`, until the run ends."""

        def has_ended() -> bool:
            return not follow or self.get_state(ref).is_terminal

        return follow_lines(self.log_reader(ref), has_ended, poll=poll)

    def cancel(self, ref: RunRef) -> None:
        """Asks AzureML to cancel the run (no effect on a finished one)."""
        if not self.get_state(ref).is_terminal:
            self._run(ref).cancel()

    def list_files(self, ref: RunRef, prefix: str = "") -> list[str]:
        """Names of the run's files (outputs/, logs/, azureml-logs/, user_logs/, ...)."""
        return list_run_files(self._run_files(ref), prefix, AZUREML_RUN_FILE_FOLDERS)

    def download_files(
        self, ref: RunRef, prefix: str, destination: Path, *, validate_checksum: bool = False
    ) -> TransferReport:
        """Downloads the run's files whose names start with `prefix`, keeping their names."""
        return download_run_files(
            self._run_files(ref),
            prefix,
            destination,
            validate_checksum=validate_checksum,
            folders=AZUREML_RUN_FILE_FOLDERS,
        )

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
        """The output datasets a completed run registered.

        AzureML registers them on completion; their names are in the run's `himl_outputs`
        tag, and the latest version of each is taken as the run's.
        """
        if not self.get_state(ref).succeeded:
            return []
        names = str(self._run(ref).get_tags().get(OUTPUTS_TAG, ""))
        return [self.resolve_dataset(DatasetConfig(name)) for name in names.split(",") if name]

    def child_runs(self, ref: RunRef) -> list[RunRef]:
        """The run's children (a sweep's trials)."""
        return [
            RunRef(ref.experiment, child.id, self.name, portal_url=child.get_portal_url())
            for child in self._run(ref).get_children()
        ]

    def _run(self, ref: RunRef) -> Any:
        if ref.run_id not in self._runs:
            self._runs[ref.run_id] = self.service.run(ref.run_id)
        return self._runs[ref.run_id]

    def _run_files(self, ref: RunRef) -> Datastore:
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


if TYPE_CHECKING:  # mypy checks that the backend provides the whole Backend protocol
    _protocol_check: type[Backend] = AzureMLV1Backend
