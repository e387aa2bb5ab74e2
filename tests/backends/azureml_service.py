"""A stand-in for the AzureML service, at the backend's one service seam (`AzureMLService`).

It holds real azureml-core objects built offline (datastores, datasets, environments, run
configurations) and behaves like the service where tests look: datastores point at Azurite
(a real blob endpoint), runs go through AzureML's status sequence one step per poll, write
their driver log and output files into the artifact store as they go, fail with AzureML's own
error payloads, and a submission takes its snapshot with the `.amlignore` rules present at
that moment.

Runs either follow a script (`Outcome`: statuses, log lines, files and metrics given by the
test), or, on a service made with `execute=True` (or after `service.execute = True`), really
execute the submitted job as a subprocess, as AzureML's compute would
(tests/backends/azureml_execution.py): its log, files, metrics and output datasets are the
script's own. A running executed job is preempted when one of `service.preemptions` fires
(tests/backends/job_process.py, `Preemption`): its process is killed, its files so far are
kept, and it ends Failed with AzureML's PREEMPTION_ERROR (as on low-priority compute: the
v1 compute's error for a preempted node, FACTS.md, "AzureML facts that shape the design").

Submitted pipelines run as the pipeline service runs them (tests/backends/
azureml_pipeline_service.py): their steps are child runs that follow Outcomes or execute.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pathspec

from himl_tasks.errors import (
    ComputeNotFoundError,
    DatasetNotFoundError,
    DatastoreNotFoundError,
    RunNotFoundError,
)
from himl_tasks.storage import BlobDatastore
from himl_tasks.testing.azurite import ACCOUNT_NAME, Azurite
from tests.backends.azureml_execution import (
    ExecutedJob,
    copy_files,
    sampled_arguments,
    utc_now,
)
from tests.backends.azureml_pipeline_service import (
    FakePipelineEndpoint,
    FakePublishedPipeline,
    FakeSchedule,
    PipelineStandIn,
    input_entry,
    nodes_of,
    pipeline_run_class,
)
from tests.backends.job_process import Preemption, preemption_fires
from tests.conftest import workspace_containers

DEFAULT_DATASTORE = "workspaceblobstore"
ARTIFACT_DATASTORE = "workspaceartifactstore"
STUDIO = "https://ml.azure.com"
PREEMPTION_ERROR = {
    "error": {
        "code": "UserError",
        "message": "AzureMLCompute job failed.\nPreemptionError: Nodes of this job got pre-empted.",
        "details": [],
    }
}
SCRIPT_ERROR = {
    "error": {
        "code": "UserError",
        "message": "Execution failed. User process 'python' exited with status code 1. "
        "Please check log file 'user_logs/std_log.txt' for error details. Error: "
        "ZeroDivisionError: division by zero",
    }
}
SYSTEM_ERROR = {
    "error": {
        "code": "SystemError",
        "message": "AzureMLCompute job failed.\nJobFailed: Submitted script failed with a "
        "non-zero exit code; see the driver log file for details.",
    }
}

# A job whose input data AzureML's data runtime could not read with the datastore's credential.
# The code and its meaning: "Troubleshoot data access errors" (Azure Machine Learning docs,
# MicrosoftDocs/azure-ai-docs articles/machine-learning/how-to-troubleshoot-data-access.md,
# ScriptExecution.StreamAccess.Authentication). The message's layout (Error Code / Native
# Error / Error Message) is the one the service shows for the write side of the same failure,
# ScriptExecution.WriteStreams.Authentication (Azure/azureml-examples issue 2994).
STORAGE_AUTH_ERROR = {
    "error": {
        "code": "UserError",
        "message": "Error Code: ScriptExecution.StreamAccess.Authentication\n"
        "Native Error: error in streaming from input data sources\n"
        "\tStreamError(PermissionDenied(Some(AuthenticationFailed)))\n"
        "=> Permission denied when trying to access the stream.\n"
        "Error Message: Authentication failed when trying to access the stream. Make sure you "
        "have correct permissions set up.",
        "details": [],
    }
}
# A job whose own script used the datastore with a key the account refuses: the storage
# service's 403 AuthenticationFailed ("Common REST API error codes", Azure Storage docs), as
# azureml-core's storage client words it (microsoft/AzureML-BERT issue 7), inside the
# service's "user process exited" error (the shape of SCRIPT_ERROR).
SCRIPT_STORAGE_AUTH_ERROR = {
    "error": {
        "code": "UserError",
        "message": "Execution failed. User process 'python' exited with status code 1. "
        "Please check log file 'user_logs/std_log.txt' for error details. Error: "
        "AzureHttpError: Server failed to authenticate the request. Make sure the value of "
        "Authorization header is formed correctly including the signature. ErrorCode: "
        "AuthenticationFailed",
    }
}


@dataclass
class Outcome:
    """How the next submitted run behaves.

    Attributes:
        statuses: AzureML statuses the run goes through, one per poll of its details.
        error: The error payload a Failed run reports.
        log_lines: Driver log lines, written while the run is Running (one per poll).
        files: Run files ({name: bytes}) written when the run reaches Completed or Failed.
        metrics: What `get_metrics()` returns.
        children: Outcomes of child runs (a sweep's trials).
    """

    statuses: tuple[str, ...] = (
        "NotStarted", "Queued", "Preparing", "Running", "Running", "Finalizing", "Completed",
    )  # fmt: skip
    error: dict[str, Any] | None = None
    log_lines: tuple[str, ...] = ("loading data", "epoch 0 loss 1.0", "epoch 1 loss 0.5")
    files: dict[str, bytes] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    children: tuple[Outcome, ...] = ()


@dataclass
class Execution:
    """How an executing run runs.

    Attributes:
        config: The job's run configuration (a HyperDriveConfig's inner ScriptRunConfig).
        snapshot_root: Where the snapshot's files are: the source folder for a job (its
            working folder is copied at submission), a copy taken at submission for a sweep.
        snapshot: The snapshot's files, relative to `snapshot_root`.
        trials: A HyperDrive run's trials not started yet: their extra arguments.
        max_concurrent: How many trials run at once.
    """

    config: Any
    snapshot_root: Path
    snapshot: list[str]
    trials: list[list[str]] = field(default_factory=list)
    max_concurrent: int = 1


_ENDED = ("Completed", "Failed", "Canceled")


class RunIdConflictError(Exception):
    """The service's answer to creating a run under an id that exists."""


class FakeExperiment:
    def __init__(self, workspace: Any, name: str) -> None:
        self.workspace = workspace
        self.name = name


class FakeRun:
    """A submitted run: its details change one status per `get_details()` call."""

    def __init__(
        self,
        service: FakeAzureMLService,
        experiment: str,
        outcome: Outcome,
        run_id: str | None = None,
        *,
        execution: Execution | None = None,
    ) -> None:
        self.service = service
        # The SDK's own run ids look like this (azureml/_execution/_commands.py,
        # _generate_run_id_from_experiment_name); a caller may name the run instead.
        self.id = run_id or (
            f"{experiment}_{int(1_700_000_000 + next(service.counter))}_{secrets.token_hex(4)}"
        )
        self.experiment = FakeExperiment(service.workspace, experiment)
        self.outcome = outcome
        self.display_name = self.id
        self.name: str | None = None  # the run record's name (a pipeline step run's: its step)
        self.tags: dict[str, str] = {}
        self.step = -1
        self.canceled = False
        self.logged: list[str] = []
        self.files_written = False
        self.outputs_registered = False
        self.output_data: dict[str, Any] = {}
        self.output_datasets: list[dict[str, Any]] = []
        self.registered_outputs: dict[str, RegisteredDataset] = {}
        # The run's inputs as get_details() lists them (tests/backends/
        # azureml_pipeline_service.py, input_entry), and its properties (a reused pipeline
        # step's name the run it reused).
        self.input_datasets: list[dict[str, Any]] = []
        self.properties: dict[str, str] = {}
        self.description = ""
        self.children: list[FakeRun] = []
        # Executing: the run's process (a sweep's parent has none: its trials are children).
        self.execution = execution
        self.job: ExecutedJob | None = None
        self.current = "NotStarted"
        self.created_at = utc_now()
        self.ended_at = ""
        self.error: dict[str, Any] | None = None
        self.preempted = False
        if execution is None:
            self.children = [FakeRun(service, experiment, child) for child in outcome.children]

    @property
    def status(self) -> str:
        if self.canceled:
            return "Canceled"
        if self.execution is not None:
            return self.current
        return self.outcome.statuses[max(0, min(self.step, len(self.outcome.statuses) - 1))]

    def get_details(self) -> dict[str, Any]:
        if self.execution is not None:
            return self._executed_details()
        if not self.canceled:
            self.step += 1
        status = self.status
        lines = self.outcome.log_lines
        if status not in ("NotStarted", "Queued", "Preparing", "Running") and self.logged != list(
            lines
        ):
            self.logged = list(lines)  # the rest of the log is uploaded as the run ends
            self._write_log()
        elif status == "Running" and len(self.logged) < len(lines):
            self.logged.append(lines[len(self.logged)])
            self._write_log()
        if status == "Completed" and not self.outputs_registered:
            self.outputs_registered = True
            self._register_outputs()
        if status in ("Completed", "Failed") and not self.files_written:
            self.files_written = True
            for name, data in self.outcome.files.items():
                self.service.write_run_file(self.id, name, data)
        details: dict[str, Any] = {
            "runId": self.id,
            "status": status,
            "createdTimeUtc": "2026-11-21T09:00:00.000000Z",
        }
        if self.step >= 3:
            details["startTimeUtc"] = "2026-11-21T09:05:00.1234567Z"
        if status in _ENDED:
            details["endTimeUtc"] = "2026-11-21T10:00:00.000000Z"
        if status == "Failed" and self.outcome.error:
            details["error"] = self.outcome.error
        return self._with_datasets(details)

    # ---- executing ------------------------------------------------------------------------

    def _executed_details(self) -> dict[str, Any]:
        """One poll of an executing run.

        NotStarted, Queued, Preparing (one poll each, as the scripted runs), Running while
        its process lives (the driver log uploaded as it grows), Finalizing once it has ended
        (its files and outputs uploaded), then Completed on exit code 0, else Failed with the
        script's error.
        """
        if self.status not in _ENDED:
            self.step += 1
            self._advance()
        status = self.status
        details: dict[str, Any] = {
            "runId": self.id,
            "status": status,
            "createdTimeUtc": self.created_at,
        }
        if self.step >= 3:
            details["startTimeUtc"] = self.job.started_at if self.job else self.created_at
        if self.ended_at:
            details["endTimeUtc"] = self.ended_at
        if status == "Failed" and self.error:
            details["error"] = self.error
        return self._with_datasets(details)

    def _with_datasets(self, details: dict[str, Any]) -> dict[str, Any]:
        if self.input_datasets:
            details["inputDatasets"] = self.input_datasets
        if self.output_datasets:
            details["outputDatasets"] = self.output_datasets
        return details

    def _advance(self) -> None:
        if self.step < 3:
            self.current = ("NotStarted", "Queued", "Preparing")[self.step]
        elif self.job is None:
            self._advance_sweep()
        elif self.current != "Finalizing":
            if self.current == "Running" and self.service.should_preempt(self):
                self._preempt()
            elif self.job.alive:
                self.current = "Running"
                self.job.upload_log()
            else:
                self.current = "Finalizing"
                self.job.upload_results(outputs=self.job.return_code == 0)
        elif self.job.timed_out:
            self._end("Canceled")
        elif self.job.return_code == 0:
            self._end("Completed")
            self.outputs_registered = True
            self._register_outputs()
        else:
            self.error = self.job.error()
            self._end("Failed")

    def _advance_sweep(self) -> None:
        """One poll of a HyperDrive run: its trials advance, and more start as others end.

        Trials are child runs, at most `max_concurrent` at a time (HyperDriveConfig's
        max_concurrent_runs); the HyperDrive run is Completed when all have ended.
        """
        assert self.execution is not None
        active = [child for child in self.children if child.get_status() not in _ENDED]
        for child in active:
            child.get_details()
        active = [child for child in active if child.get_status() not in _ENDED]
        while self.execution.trials and len(active) < self.execution.max_concurrent:
            active.append(self.service.start_trial(self, self.execution.trials.pop(0)))
        if active:
            self.current = "Running"
        else:
            self._end("Completed")

    def _end(self, status: str) -> None:
        self.current = status
        self.ended_at = utc_now()

    def _preempt(self) -> None:
        """The job's nodes are taken back: its process killed, its files so far kept."""
        assert self.job is not None
        self.preempted = True
        self.job.kill()
        self.job.upload_results(outputs=False)
        self.error = copy.deepcopy(PREEMPTION_ERROR)
        self._end("Failed")

    def _cancel_execution(self) -> None:
        assert self.execution is not None
        self.execution.trials.clear()
        for child in self.children:
            child.cancel()
        if self.job is not None:
            self.job.kill()
            self.job.upload_results(outputs=False)
        self.ended_at = utc_now()

    def _register_outputs(self) -> None:
        """What `register_on_complete` does: each output becomes its dataset's next version."""
        from azureml.core import Dataset

        for output_name, output in self.output_data.items():
            datastore, path = output.destination
            folder = path.replace("{run-id}", self.id).rstrip("/")
            dataset = Dataset.File.from_files(path=[(datastore, f"{folder}/**")], validate=False)
            tags = {"himl_path": folder}
            registered = self.service.register_dataset(dataset, output._registration.name, tags)
            self.registered_outputs[output_name] = registered
            # The run's details then list it, in the shape of `Run.get_details()`'s
            # `outputDatasets` (azureml/core/run.py, its docstring) with the identifier of
            # azureml/_restclient/models/dataset_identifier.py (savedId, registeredId,
            # registeredVersion; versions travel as text).
            self.output_datasets.append(
                {
                    "identifier": {
                        "savedId": secrets.token_hex(16),
                        "registeredId": secrets.token_hex(16),
                        "registeredVersion": str(registered.version),
                    },
                    "outputType": "RunOutput",
                    "outputDetails": {"outputName": output_name},
                    # What Run.get_details() adds: the dataset, got by its saved id
                    # (azureml/data/_dataset_lineage.py, update_output_lineage).
                    "dataset": registered,
                }
            )

    def _write_log(self) -> None:
        text = "".join(f"{line}\n" for line in self.logged)
        self.service.write_run_file(self.id, "azureml-logs/70_driver_log.txt", text)

    def get_status(self) -> str:
        return self.status

    def get_portal_url(self) -> str:
        ws = self.service.workspace
        return (
            f"{STUDIO}/runs/{self.id}?wsid=/subscriptions/{ws.subscription_id}/resourcegroups/"
            f"{ws.resource_group}/workspaces/{ws.name}"
        )

    def cancel(self) -> None:
        if self.status not in _ENDED:
            self.canceled = True
            if self.execution is not None:
                self._cancel_execution()

    def get_tags(self) -> dict[str, str]:
        if self.job is not None:
            return {**self.tags, **self.job.tags()}
        return self.tags

    def get_metrics(self) -> dict[str, Any]:
        if self.job is not None:
            return self.job.metrics()
        return self.outcome.metrics

    def get_children(self) -> list[FakeRun]:
        return self.children

    def get_properties(self) -> dict[str, str]:
        return self.properties


class RegisteredDataset:
    """A registered version of a file dataset: the real offline dataset, with its version."""

    def __init__(self, dataset: Any, name: str, version: int, tags: dict[str, str]) -> None:
        self.dataset = dataset
        self.name = name
        self.version = version
        self.tags = tags

    def as_named_input(self, name: str) -> Any:
        return self.dataset.as_named_input(name)

    def download(self, target_path: str, overwrite: bool = False) -> list[str]:
        raise AssertionError("registered by himl-tasks: downloads must use the transfer engine")


class FakeAzureMLService:
    """The AzureML service for one workspace, its storage on Azurite."""

    def __init__(
        self,
        azurite: Azurite,
        containers: dict[str, str],
        computes: set[str],
        *,
        execute: bool = False,
    ) -> None:
        from azureml.core import Workspace
        from azureml.data.azure_storage_datastore import AzureBlobDatastore

        self.workspace = Workspace(
            "00000000-0000-0000-0000-000000000000",
            "rg-himl",
            "ws-himl",
            auth=object(),
            _disable_service_check=True,
        )
        self.azurite = azurite
        self.datastores = {
            name: AzureBlobDatastore(
                self.workspace,
                name,
                container,
                ACCOUNT_NAME,
                account_key=azurite.account_key,
                protocol="http",
                endpoint="core.windows.net",
            )
            for name, container in containers.items()
        }
        self.computes = computes
        self.datasets: dict[str, list[RegisteredDataset]] = {}
        self.environments: dict[str, Any] = {}
        self.environment_registrations = 0
        self.wheels: list[str] = []
        self.submitted: list[tuple[str, Any, dict[str, str], list[str]]] = []
        self.runs: dict[str, FakeRun] = {}
        self.next_outcome = Outcome()
        # How runs of a given entry script behave; other scripts' runs take `next_outcome`.
        self.outcomes: dict[str, Outcome] = {}
        self.fail_next_submit: Exception | None = None
        self.crash_after_create: BaseException | None = None
        self.another_submitter_first = False
        self.submit_requests = 0
        self.counter = itertools.count()
        # Whether runs submitted from now on execute their job (else they follow Outcomes).
        self.execute = execute
        self._compute_root: Path | None = None
        self.jobs: list[ExecutedJob] = []
        # When running executed jobs are preempted (a low-priority cluster's nodes taken back).
        self.preemptions: list[Preemption] = []
        self.pipelines = PipelineStandIn(self)

    @property
    def compute_root(self) -> Path:
        """Where executed jobs keep their working folders (made on first use)."""
        if self._compute_root is None:
            self._compute_root = Path(tempfile.mkdtemp(prefix="himl-aml-compute-"))
        return self._compute_root

    def shutdown(self) -> None:
        """Ends every job process still running and removes the jobs' folders."""
        for job in self.jobs:
            job.kill()
        if self._compute_root is not None:
            shutil.rmtree(self._compute_root, ignore_errors=True)

    def start_trial(self, parent: FakeRun, arguments: list[str]) -> FakeRun:
        """Starts one HyperDrive trial: a child run executing the job with its arguments.

        Child ids are the parent's with the trial's index (`HD_<id>_<n>` on AzureML).
        """
        assert parent.execution is not None
        execution = parent.execution
        child = FakeRun(
            self,
            parent.experiment.name,
            parent.outcome,
            f"{parent.id}_{len(parent.children)}",
            execution=execution,
        )
        child.output_data = dict(execution.config.run_config.output_data or {})
        self._start_job(child, execution, tuple(arguments))
        parent.children.append(child)
        self.runs[child.id] = child
        return child

    def should_preempt(self, run: FakeRun) -> bool:
        """True when a preemption rule fires for this running executed run."""
        assert run.job is not None
        metrics = run.job.metrics()

        def logged(name: str) -> int:
            # As get_metrics() shapes them: a scalar logged more than once is a list, a
            # series of rows (log_row with a step) a table of {column: [cells]}.
            value = metrics.get(name)
            if isinstance(value, dict):
                value = next(iter(value.values()), [])
            return len(value) if isinstance(value, list) else int(name in metrics)

        preempted = [
            str(other.job.config.script)
            for other in self.runs.values()
            if other.preempted and other.job is not None
        ]
        return preemption_fires(self.preemptions, str(run.job.config.script), preempted, logged)

    def _start_job(self, run: FakeRun, execution: Execution, arguments: tuple[str, ...]) -> None:
        job = ExecutedJob(
            self,
            run.id,
            run.experiment.name,
            execution.config,
            execution.snapshot_root,
            execution.snapshot,
            arguments,
        )
        self.jobs.append(job)
        run.job = job
        job.start()

    def _execute(self, run: FakeRun, config: Any, snapshot: list[str]) -> None:
        """Starts the submitted job (or, for a HyperDriveConfig, schedules its trials).

        The snapshot is taken now, while the submission's `.amlignore` is in place: a job's
        working folder is copied from the source folder at once; a sweep's trials start later,
        each from a copy of the snapshot made now.
        """
        root = Path(_source_directory(config))
        execution = Execution(_run_config(config), root, snapshot)
        run.execution = execution
        if execution.config is config:
            self._start_job(run, execution, ())
            return
        # A HyperDriveConfig around the job.
        execution.snapshot_root = self.compute_root / f"{run.id}.snapshot"
        copy_files(root, snapshot, execution.snapshot_root)
        execution.trials = sampled_arguments(config)
        execution.max_concurrent = int(config._max_concurrent_runs or len(execution.trials))

    def store(self, name: str) -> BlobDatastore:
        """The blob container behind a datastore, for arranging and checking files."""
        return BlobDatastore.with_account_key(
            self.azurite.account_url,
            self.datastores[name].container_name,
            ACCOUNT_NAME,
            self.azurite.account_key,
        )

    def write_run_file(self, run_id: str, name: str, data: str | bytes) -> None:
        folder = Path(tempfile.mkdtemp())
        try:
            path = folder / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data.encode() if isinstance(data, str) else data)
            self.store(ARTIFACT_DATASTORE).upload_folder(
                folder, f"ExperimentRun/dcid.{run_id}", overwrite=True
            )
        finally:
            shutil.rmtree(folder)

    # ---- the AzureMLService protocol ----------------------------------------------------

    def datastore(self, name: str) -> Any:
        found = self.datastores.get(name or DEFAULT_DATASTORE)
        if found is None:
            raise DatastoreNotFoundError(f"no datastore '{name}' in workspace 'ws-himl'")
        return found

    def register_datastore(self, datastore: Any) -> Any:
        self.datastores[datastore.name] = datastore
        return datastore

    def dataset(self, name: str, version: int | None) -> Any:
        versions = self.datasets.get(name)
        if not versions:
            return None
        if version is None:
            return versions[-1]
        if version > len(versions):
            raise DatasetNotFoundError(f"dataset '{name}' has no version {version}")
        return versions[version - 1]

    def register_dataset(self, dataset: Any, name: str, tags: dict[str, str]) -> Any:
        versions = self.datasets.setdefault(name, [])
        # Each version is an object of its own, as Dataset.register returns a new one.
        registered = copy.copy(dataset)
        versions.append(RegisteredDataset(registered, name, len(versions) + 1, tags))
        return versions[-1]

    def environment(self, name: str) -> Any:
        return self.environments.get(name)

    def register_environment(self, environment: Any) -> Any:
        self.environment_registrations += 1
        environment.version = "1"
        self.environments[environment.name] = environment
        return environment

    def add_private_wheel(self, path: Path) -> str:
        self.wheels.append(path.name)
        return (
            f"https://{ACCOUNT_NAME}.blob.core.windows.net/azureml/Environment/"
            f"azureml-private-packages/{path.name}"
        )

    def check_compute(self, name: str) -> None:
        if name not in self.computes:
            raise ComputeNotFoundError(f"no compute cluster '{name}' in workspace 'ws-himl'")

    def submit(
        self, experiment: str, config: Any, tags: dict[str, str], *, run_id: str | None = None
    ) -> Any:
        snapshot = self._snapshot(Path(_source_directory(config)))
        outcome = self.outcomes.get(_run_config(config).script, self.next_outcome)
        if self.fail_next_submit is not None:
            error, self.fail_next_submit = self.fail_next_submit, None
            raise error
        if self.another_submitter_first and run_id is not None:
            self.another_submitter_first = False
            self.runs[run_id] = FakeRun(self, experiment, outcome, run_id)
            self.submit_requests += 1
        if run_id is not None and run_id in self.runs:
            # A run id names one run in a workspace (Run.get(workspace, run_id) takes no
            # experiment); the service refuses to create a second run under it.
            raise RunIdConflictError(f"Run {run_id} already exists in workspace ws-himl")
        run = FakeRun(self, experiment, outcome, run_id)
        self.submit_requests += 1
        if self.crash_after_create:  # the submitter dies before it hears back
            self.runs[run.id] = run
            run.tags = {}  # Experiment.submit sets tags in a later request, never sent
            raise self.crash_after_create
        run.tags = dict(tags)
        run.output_data = dict(_run_config(config).run_config.output_data or {})
        for consumption in (_run_config(config).run_config.data or {}).values():
            registered = self.registered_for(consumption.dataset)
            if registered is not None:
                run.input_datasets.append(input_entry(consumption, registered))
        self.runs[run.id] = run
        if self.execute:
            run.children = []
            self._execute(run, config, snapshot)
        for child in run.children:
            self.runs[child.id] = child
        self.submitted.append((experiment, config, tags, snapshot))
        return run

    def registered_for(self, dataset: Any) -> RegisteredDataset | None:
        """The registered version whose dataset object a consumption reads, if any."""
        for versions in self.datasets.values():
            for registered in versions:
                if registered.dataset is dataset or registered is dataset:
                    return registered
        return None

    # ---- pipelines (tests/backends/azureml_pipeline_service.py) ---------------------------

    def submit_pipeline(
        self, experiment: str, steps: list[Any], description: str, tags: dict[str, str]
    ) -> Any:
        nodes = nodes_of(self, steps)
        if self.fail_next_submit is not None:
            error, self.fail_next_submit = self.fail_next_submit, None
            raise error
        return self.pipelines.submit(experiment, nodes, description, tags)

    def pipeline_runs(self, experiment: str) -> list[Any]:
        """As `Experiment.get_runs(type="azureml.PipelineRun")`: newest first."""
        kind = pipeline_run_class()
        return [
            run
            for run in reversed(self.runs.values())
            if isinstance(run, kind) and run.experiment.name == experiment
        ]

    def publish_pipeline(self, name: str, steps: list[Any], description: str, version: str) -> Any:
        id = secrets.token_hex(16)
        published = FakePublishedPipeline(
            id,
            name,
            description,
            version,
            nodes_of(self, steps),
            self.pipelines.url("PipelineRuns/PipelineSubmit", id),
        )
        self.pipelines.published.append(published)
        return published

    def pipeline_endpoints(self) -> list[Any]:
        return list(self.pipelines.endpoints)

    def add_to_endpoint(self, name: str, published: Any, description: str) -> Any:
        endpoint = next((e for e in self.pipelines.endpoints if e.name == name), None)
        if endpoint is None:
            id = secrets.token_hex(16)
            endpoint = FakePipelineEndpoint(
                id,
                name,
                description,
                self.pipelines.url("PipelineRuns/PipelineEndpointSubmit/Id", id),
            )
            self.pipelines.endpoints.append(endpoint)
        endpoint.add_default(published)
        return endpoint

    def submit_published(self, published: Any, experiment: str, tags: dict[str, str]) -> Any:
        # The steps' snapshots are those taken when the pipeline was published.
        nodes = [dataclasses.replace(node, run=None) for node in published.nodes]
        return self.pipelines.submit(experiment, nodes, published.name, tags)

    def schedules(self) -> list[Any]:
        return list(self.pipelines.schedules)

    def create_schedule(
        self, name: str, endpoint_id: str, experiment: str, recurrence: Any, description: str
    ) -> Any:
        recurrence.validate()  # as Schedule.create_for_pipeline_endpoint does
        schedule = FakeSchedule(
            secrets.token_hex(16), name, description, endpoint_id, experiment, recurrence
        )
        self.pipelines.schedules.append(schedule)
        return schedule

    def update_schedule(
        self, schedule: Any, recurrence: Any, description: str, *, active: bool
    ) -> Any:
        recurrence.validate()
        schedule.recurrence = recurrence
        schedule.description = description
        schedule.status = "Active" if active else "Disabled"
        return schedule

    def run(self, run_id: str) -> Any:
        if run_id not in self.runs:
            raise RunNotFoundError(f"no run '{run_id}' in workspace 'ws-himl'")
        return self.runs[run_id]

    def dataset_names(self) -> list[str]:
        """As azureml-core's `Dataset.get_all(workspace)`: the registered datasets' names."""
        return list(self.datasets)

    def datastore_names(self) -> list[str]:
        """As azureml-core's `Workspace.datastores`: the registered datastores' names."""
        return list(self.datastores)

    def list_runs(self, experiment: str | None) -> list[tuple[Any, str | None]]:
        """As azureml-core's `Experiment.get_runs(include_children=True)` (over every
        experiment of `Workspace.experiments` when `experiment` is None): newest first, each
        with its parent's id (`parent_run_id` of the listed run record); an experiment that
        does not exist has none."""
        parents = {child.id: run.id for run in self.runs.values() for child in run.children}
        listed = [
            (run, parents.get(run.id))
            for run in self.runs.values()
            if experiment is None or run.experiment.name == experiment
        ]
        return listed[::-1]

    @staticmethod
    def _snapshot(root: Path) -> list[str]:
        """The files AzureML would take: `.amlignore` (else `.gitignore`) as it is now."""
        rules: list[str] = []
        for name in (".amlignore", ".gitignore"):
            if (root / name).is_file():
                rules = (root / name).read_text(encoding="utf-8").splitlines()
                break
        spec = pathspec.GitIgnoreSpec.from_lines(rules)
        return sorted(
            p.relative_to(root).as_posix()
            for p in root.rglob("*")
            if p.is_file() and not spec.match_file(p.relative_to(root).as_posix())
        )


def _run_config(config: Any) -> Any:
    """The ScriptRunConfig of a submission (a HyperDriveConfig wraps one)."""
    return getattr(config, "_run_config", None) or config


def _source_directory(config: Any) -> str:
    return str(_run_config(config).source_directory)


def stand_in_service(
    azurite: Azurite, computes: set[str], *, execute: bool = False
) -> Iterator[FakeAzureMLService]:
    """A v1 stand-in on fresh Azurite containers (default and artifact stores); afterwards no
    job process outlives it and its containers are gone."""
    with workspace_containers(azurite) as names:
        service = FakeAzureMLService(azurite, names, computes=computes, execute=execute)
        try:
            yield service
        finally:
            service.shutdown()
