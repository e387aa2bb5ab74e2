"""A stand-in for the AzureML service (SDK v2), at the backend's one seam (`AzureMLV2Service`).

It holds real azure-ai-ml entities built offline (datastores with their credentials, data
assets, environments, computes, the submitted jobs) and behaves like the service where tests
look:

- datastores point at Azurite (a real blob endpoint): `workspaceblobstore` for data,
  `workspaceartifactstore` for the jobs' files, under `ExperimentRun/dcid.<job name>/`;
- a job's status moves one step per read of its run details, in the order the service
  reports them: Starting, Preparing, Queued, Running, Finalizing, then Completed / Failed /
  Canceled (the REST enum's order, azure/ai/ml/_restclient/arm_ml_service/models/_enums.py,
  `JobStatus`; "NotStarted" is the client's state before submission, `Job.status`'s docstring,
  azure/ai/ml/entities/_job/job.py). A job of a serverless compute passes Provisioning
  ("on-demand compute is being created", ibid.);
- while Running it writes its log (`user_logs/std_log.txt`, where v2 jobs keep the user's
  output) and its metrics, into a real MLflow tracking store (sqlite) read back with
  `MlflowClient`; as it ends, its files (`outputs/`, `logs/`);
- a failed job's run details carry the service's error payload (`error.error.code/message`,
  the shape of the run history's `RunDetails.error`,
  azure/ai/ml/_restclient/runhistory/models/_models.py);
- outputs (`rw_mount`/`upload` uri_folder outputs with a `name`) become the next version of
  their data asset when the job completes, and only then, named in the run details'
  `outputs`;
- a job that reaches its `limits.timeout` is canceled (`CommandJobLimits.timeout`: "after
  which the job will be cancelled"), a preempted one fails with AzureML's PreemptionError;
- a second job of an existing name is refused as the service refuses it (HttpResponseError
  "A job with this name already exists", MicrosoftDocs/azure-docs issue 122250);
- the code snapshot is taken at submission with `.amlignore`, else `.gitignore`, as the SDK
  does (azure/ai/ml/_utils/_asset_utils.py, `get_ignore_file`).

Jobs follow a scripted `Outcome` (keyed by the entry script named in their command, or
`next_outcome`); a sweep job samples and starts its trials (azureml_v2_sweep_trials.py).
`ExecutingAzureMLV2Service` (azureml_v2_execution.py) runs each command job's script as a
subprocess instead.

Where it differs from the service, on purpose: an MLflow run id is the store's own (AzureML
names a job's MLflow run after the job; the job is told its id as MLFLOW_RUN_ID), and the job
entity `job()` returns is the one submitted with its status and links set, not one read back
from the REST payload.
"""

from __future__ import annotations

import copy
import datetime
import itertools
import re
import shlex
import shutil
import tempfile
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pathspec

from himl_tasks.backends.azureml_v2 import sdk
from himl_tasks.errors import (
    ComputeNotFoundError,
    DatasetNotFoundError,
    DatastoreNotFoundError,
    RunNotFoundError,
)
from himl_tasks.runs import Metric
from himl_tasks.storage import BlobDatastore
from himl_tasks.testing.azurite import ACCOUNT_NAME, Azurite

DEFAULT_DATASTORE = "workspaceblobstore"
ARTIFACT_DATASTORE = "workspaceartifactstore"
SUBSCRIPTION = "00000000-0000-0000-0000-000000000000"
RESOURCE_GROUP = "rg-himl"
WORKSPACE = "ws-himl-v2"
WORKSPACE_ID = "11111111-2222-3333-4444-555555555555"
STUDIO = "https://ml.azure.com"
LOG_FILE = "user_logs/std_log.txt"
_ASSET_PATH = re.compile(r"azureml:(?P<name>[^:@/]+):(?P<version>\d+)")

TO_COMPLETED: tuple[str, ...] = (
    "Starting",
    "Preparing",
    "Queued",
    "Running",
    "Running",
    "Finalizing",
    "Completed",
)
TO_FAILED: tuple[str, ...] = ("Starting", "Preparing", "Queued", "Running", "Failed")
KEEPS_RUNNING: tuple[str, ...] = ("Starting", "Preparing", "Queued", "Running")
ENDED = ("Completed", "Failed", "Canceled", "NotResponding")

# The user's script exited non-zero: the service's "user process exited" error (the message
# AzureML shows in the job's overview for a command job; its code is UserError).
SCRIPT_ERROR: dict[str, Any] = {
    "error": {
        "code": "UserError",
        "message": "Execution failed. User process 'python' exited with status code 1. "
        "Please check log file 'user_logs/std_log.txt' for error details. Error: "
        "ZeroDivisionError: division by zero",
        "details": [],
    }
}
# A low-priority (Spot) job whose nodes were taken back: AzureML ends it Failed with a
# PreemptionError inside a UserError (FACTS.md, "AzureML facts that shape the design").
PREEMPTION_ERROR: dict[str, Any] = {
    "error": {
        "code": "UserError",
        "message": "AzureMLCompute job failed.\nPreemptionError: Nodes of this job got pre-empted.",
        "details": [],
    }
}
# A job that reaches its `limits.timeout` is canceled: "The max run duration in ISO 8601
# format, after which the job will be cancelled" (CommandJobLimits.timeout, the REST API's
# and azure/ai/ml/entities/_job/job_limits.py's docstring). No error payload is documented.
TIMES_OUT: tuple[str, ...] = ("Starting", "Preparing", "Queued", "Running", "Canceled")
# The service's own failure (not the job's): a SystemError code.
SYSTEM_ERROR: dict[str, Any] = {
    "error": {
        "code": "SystemError",
        "message": "AzureMLCompute job failed.\nJobFailed: internal error while preparing the "
        "node; the job did not start.",
        "details": [],
    }
}


def script_error(exit_code: int) -> dict[str, Any]:
    """The service's error for a script that exited with `exit_code`."""
    message = SCRIPT_ERROR["error"]["message"].replace("status code 1", f"status code {exit_code}")
    return {"error": {**SCRIPT_ERROR["error"], "message": message}}


@dataclass
class Outcome:
    """How a submitted job behaves.

    Attributes:
        statuses: The statuses it goes through, one per read of its run details.
        error: The error payload a Failed job reports.
        log_lines: Its log lines, written one per poll while Running (the rest as it ends).
        files: Its files ({name: bytes}), written as it reaches Finalizing or Failed.
        metrics: Metric values it logs ({name: [values at steps 0, 1, ...]}) while Running.
        children: Outcomes of its child jobs (a sweep's trials).
        timed_out: It ends (Canceled) as its `limits.timeout` is reached: its end is stamped
            that long after its start.
    """

    statuses: tuple[str, ...] = TO_COMPLETED
    error: dict[str, Any] | None = None
    log_lines: tuple[str, ...] = ("loading data", "epoch 0 loss 1.0", "epoch 1 loss 0.5")
    files: dict[str, bytes] = field(default_factory=dict)
    metrics: dict[str, list[float]] = field(default_factory=dict)
    children: tuple[Outcome, ...] = ()
    timed_out: bool = False


def utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def rest_time(moment: datetime.datetime | None) -> str | None:
    """A time as the run history sends it ('2026-11-30T09:00:00.123456Z')."""
    return None if moment is None else moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class FakeJob:
    """A submitted job: its status moves one step per `poll()`."""

    def __init__(
        self,
        service: FakeAzureMLV2Service,
        entity: Any,
        outcome: Outcome,
        *,
        parent: str | None = None,
        snapshot: list[str] | None = None,
    ) -> None:
        self.service = service
        self.entity = entity
        self.name = str(entity.name)
        self.outcome = outcome
        self.parent = parent
        self.snapshot = snapshot or []
        statuses = list(outcome.statuses)
        if _is_serverless(entity) and "Provisioning" not in statuses and len(statuses) > 1:
            statuses.insert(1, "Provisioning")
        self.statuses = tuple(statuses)
        self.step = 0
        self.canceled = False
        self.logged: list[str] = []
        self.files_written = False
        self.metrics_written = False
        self.outputs_registered = False
        self.created_at = utc_now()
        self.started_at: datetime.datetime | None = None
        self.ended_at: datetime.datetime | None = None
        self.children: list[FakeJob] = []
        self.mlflow_run_id: str | None = None
        # The data asset version each output became, as the run details name it.
        self.registered_outputs: dict[str, dict[str, str]] = {}
        # A pipeline node's child job: the hash its reuse is decided by.
        self.reuse_key: str | None = None

    @property
    def status(self) -> str:
        if self.canceled:
            return "Canceled"
        return self.statuses[min(self.step, len(self.statuses) - 1)]

    def poll(self) -> None:
        """One read of the job's details: it moves one status on and does what that brings."""
        if self.status in ENDED:
            return
        self.step += 1
        status = self.status
        if status == "Running" and self.started_at is None:
            self.started_at = utc_now()
        if status == "Running" and len(self.logged) < len(self.outcome.log_lines):
            self.logged.append(self.outcome.log_lines[len(self.logged)])
            self._write_log()
        if status == "Running" and not self.metrics_written:
            self.metrics_written = True
            self.service.log_metrics(self, self.outcome.metrics)
        if status in ("Finalizing", "Completed", "Failed"):
            self._finish_files()
        if status in ENDED:
            self.ended_at = utc_now()
            if self.started_at is None:
                self.started_at = self.ended_at
            timeout = getattr(getattr(self.entity, "limits", None), "timeout", None)
            if self.outcome.timed_out and isinstance(timeout, int | float):
                self.ended_at = self.started_at + datetime.timedelta(seconds=timeout)
        if status == "Completed" and not self.outputs_registered:
            self.outputs_registered = True
            self.service.register_outputs(self)
        for child in self.children:
            child.poll()

    def cancel(self) -> None:
        if self.status not in ENDED:
            self.canceled = True
            self.ended_at = utc_now()
            self._finish_files(files=False)
            for child in self.children:
                child.cancel()

    def _finish_files(self, *, files: bool = True) -> None:
        if self.logged != list(self.outcome.log_lines):
            self.logged = list(self.outcome.log_lines)  # the rest of the log as the job ends
            self._write_log()
        if files and not self.files_written:
            self.files_written = True
            for name, data in self.outcome.files.items():
                if name.startswith(("outputs/", "logs/")):
                    self.service.write_run_file(self.name, name, data)

    def _write_log(self) -> None:
        text = "".join(f"{line}\n" for line in self.logged)
        self.service.write_run_file(self.name, LOG_FILE, text)

    def details(self) -> dict[str, Any]:
        """The run history's details of the job, in the REST shape (camelCase keys)."""
        status = self.status
        details: dict[str, Any] = {
            "runId": self.name,
            "status": status,
            "parentRunId": self.parent,
            "target": getattr(self.entity, "compute", None),
            "createdTimeUtc": rest_time(self.created_at),
            "startTimeUtc": rest_time(self.started_at),
            "endTimeUtc": rest_time(self.ended_at),
        }
        if status == "Failed":
            details["error"] = copy.deepcopy(self.outcome.error or SCRIPT_ERROR)
        if self.registered_outputs:
            details["outputs"] = copy.deepcopy(self.registered_outputs)
        read = self.read_assets()
        if read:
            details["inputs"] = read
        return details

    def read_assets(self) -> dict[str, dict[str, str]]:
        """The data asset versions the job reads, as the run details' `inputs` name them.

        TypedAssetReferences, as `outputs` (`RunDetails.inputs`,
        azure/ai/ml/_restclient/runhistory/models/_models.py; not checked live).
        """
        read = {}
        for key, given in (getattr(self.entity, "inputs", None) or {}).items():
            found = _ASSET_PATH.fullmatch(str(getattr(given, "path", "") or ""))
            if found:
                read[str(key)] = {
                    "assetId": f"azureml://locations/westeurope/workspaces/{WORKSPACE_ID}/"
                    f"data/{found['name']}/versions/{found['version']}",
                    "type": "UriFolder",
                }
        return read

    def as_entity(self) -> Any:
        """The job as `jobs.get` returns it: the submitted entity, its status and links set."""
        entities = sdk.entities()
        job = copy.copy(self.entity)
        job._status = self.status
        job._id = (
            f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{RESOURCE_GROUP}/providers/"
            f"Microsoft.MachineLearningServices/workspaces/{WORKSPACE}/jobs/{self.name}"
        )
        job._creation_context = entities.SystemData(created_at=self.created_at)
        job.services = {"Studio": entities.JobService(endpoint=self.studio_url)}
        return job

    @property
    def studio_url(self) -> str:
        return (
            f"{STUDIO}/runs/{self.name}?wsid=/subscriptions/{SUBSCRIPTION}/resourcegroups/"
            f"{RESOURCE_GROUP}/workspaces/{WORKSPACE}"
        )


class FakeAzureMLV2Service:
    """The AzureML service (SDK v2) for one workspace, its storage on Azurite.

    Args:
        azurite: The blob endpoint.
        containers: The container of each datastore (`workspaceblobstore`,
            `workspaceartifactstore`, ...), created by the caller.
        computes: The compute clusters: {name: tier} ("dedicated" or "low_priority").
    """

    def __init__(
        self, azurite: Azurite, containers: dict[str, str], computes: dict[str, str]
    ) -> None:
        entities = sdk.entities()
        self.subscription_id = SUBSCRIPTION
        self.resource_group = RESOURCE_GROUP
        self.workspace_name = WORKSPACE
        self.azurite = azurite
        self.datastores: dict[str, Any] = {
            name: entities.AzureBlobDatastore(
                name=name,
                account_name=ACCOUNT_NAME,
                container_name=container,
                protocol="http",
                credentials=entities.AccountKeyConfiguration(account_key=azurite.account_key),
            )
            for name, container in containers.items()
        }
        self.computes: dict[str, Any] = {
            name: entities.AmlCompute(name=name, size="Standard_DS3_v2", tier=tier)
            for name, tier in computes.items()
        }
        self.data_assets: dict[str, list[Any]] = {}
        self.environments: dict[str, list[Any]] = {}
        self.jobs: dict[str, FakeJob] = {}
        self.components: dict[str, list[Any]] = {}
        self.schedule_entities: dict[str, Any] = {}
        self.submitted: list[tuple[Any, list[str]]] = []
        self.next_outcome = Outcome()
        # How jobs of a given entry script behave; other jobs take `next_outcome`.
        self.outcomes: dict[str, Outcome] = {}
        self.create_requests = 0
        self.fail_next_create: Exception | None = None
        # The next create is done by the service, but its answer never reaches the caller:
        # azure-core's ServiceResponseError, "an error occurred after the request was sent to
        # the service" (azure/core/exceptions.py), e.g. a connection reset while waiting.
        self.lose_next_create_answer = False
        self._root = Path(tempfile.mkdtemp(prefix="himl-aml-v2-"))
        self._mlflow_lock = threading.Lock()
        self._mlflow_ready = False

    # ---- for tests --------------------------------------------------------------------

    @property
    def tracking_uri(self) -> str:
        """The workspace's MLflow tracking store (a real sqlite store)."""
        return f"sqlite:///{self._root / 'mlflow.db'}"

    def shutdown(self) -> None:
        """Removes the stand-in's own files (its MLflow store)."""
        shutil.rmtree(self._root, ignore_errors=True)

    def store(self, name: str) -> BlobDatastore:
        """The blob container behind a datastore, for arranging and checking files."""
        return BlobDatastore.with_account_key(
            self.azurite.account_url,
            self.datastores[name].container_name,
            ACCOUNT_NAME,
            self.azurite.account_key,
        )

    def write_run_file(self, job_name: str, name: str, data: str | bytes) -> None:
        """Writes one of a job's files where AzureML keeps them (the artifact store)."""
        folder = Path(tempfile.mkdtemp(dir=self._root))
        try:
            path = folder / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data.encode() if isinstance(data, str) else data)
            self.store(ARTIFACT_DATASTORE).upload_folder(
                folder, f"ExperimentRun/dcid.{job_name}", overwrite=True
            )
        finally:
            shutil.rmtree(folder)

    def mlflow_run_id(self, job: FakeJob) -> str:
        """The job's MLflow run, made on first use in its experiment's MLflow experiment.

        AzureML names a v2 job's MLflow run after the job; the sqlite store makes up its own
        run ids, so the stand-in keeps the job's (a job is given it as MLFLOW_RUN_ID).
        """
        if job.mlflow_run_id is None:
            client = self._mlflow()
            experiment = str(job.entity.experiment_name)
            found = client.get_experiment_by_name(experiment)
            experiment_id = found.experiment_id if found else client.create_experiment(experiment)
            job.mlflow_run_id = client.create_run(experiment_id, run_name=job.name).info.run_id
        return job.mlflow_run_id

    def log_metrics(self, job: FakeJob, metrics: dict[str, list[float]]) -> None:
        """Logs a scripted job's metrics into its MLflow run, in order, one ms apart."""
        if not metrics:
            return
        from mlflow.entities import Metric as MlflowMetric

        start = int(utc_now().timestamp() * 1000)
        ticks = itertools.count()
        values = [
            MlflowMetric(name, float(value), start + next(ticks), step)
            for name, series in metrics.items()
            for step, value in enumerate(series)
        ]
        self._mlflow().log_batch(self.mlflow_run_id(job), metrics=values)

    def _mlflow(self) -> Any:
        from mlflow.tracking import MlflowClient

        with self._mlflow_lock:
            client = MlflowClient(tracking_uri=self.tracking_uri)
            self._mlflow_ready = True
            return client

    def register_outputs(self, job: FakeJob) -> None:
        """What the service does for a completed job's named outputs: the next version each.

        An output whose `name` is set (and `version` unset) is registered as the next version
        of that data asset, pointing at the output's path (azure/ai/ml/entities/_inputs_outputs/
        output.py, `Output(name=..., version=...)`: "the name of the data asset to register").
        """
        entities = sdk.entities()
        for key, output in (getattr(job.entity, "outputs", None) or {}).items():
            asset = getattr(output, "name", None)
            if not asset:
                continue
            path = str(output.path).replace("${{name}}", job.name)
            made = self._add_data(entities.Data(name=asset, path=path, type="uri_folder"))
            # The run details then name the version in `outputs` (a TypedAssetReference:
            # assetId, type; azure/ai/ml/_restclient/runhistory/models/_models.py).
            job.registered_outputs[str(key)] = {
                "assetId": f"azureml://locations/westeurope/workspaces/{WORKSPACE_ID}/data/"
                f"{asset}/versions/{made.version}",
                "type": "UriFolder",
            }

    # ---- the AzureMLV2Service protocol ------------------------------------------------

    def datastore(self, name: str) -> Any:
        found = self.datastores.get(name or DEFAULT_DATASTORE)
        if found is None:
            known = ", ".join(sorted(self.datastores))
            raise DatastoreNotFoundError(
                f"no datastore '{name}' in workspace '{WORKSPACE}'; known: {known}"
            )
        return copy.deepcopy(found)

    def create_datastore(self, datastore: Any) -> Any:
        self.datastores[datastore.name] = copy.deepcopy(datastore)
        return self.datastore(datastore.name)

    def datastore_names(self) -> list[str]:
        return list(self.datastores)

    def data(self, name: str, version: int | None) -> Any:
        versions = self.data_assets.get(name)
        if not versions:
            return None
        if version is None:
            return copy.deepcopy(versions[-1])
        for each in versions:
            if str(each.version) == str(version):
                return copy.deepcopy(each)
        raise DatasetNotFoundError(f"data asset '{name}' has no version {version}")

    def create_data(self, data: Any) -> Any:
        versions = self.data_assets.setdefault(data.name, [])
        if data.version is not None and any(str(v.version) == str(data.version) for v in versions):
            from azure.core.exceptions import ResourceExistsError

            # Data asset versions are immutable; the service refuses to change one.
            raise ResourceExistsError(
                f"(UserError) Conflict: data asset {data.name} version {data.version} exists"
            )
        return self._add_data(data)

    def _add_data(self, data: Any) -> Any:
        versions = self.data_assets.setdefault(data.name, [])
        made = copy.deepcopy(data)
        if made.version is None:
            made.version = str(max((int(v.version) for v in versions), default=0) + 1)
        made.version = str(made.version)
        versions.append(made)
        return copy.deepcopy(made)

    def data_names(self) -> list[str]:
        return list(self.data_assets)

    def environment(self, name: str, version: str | None = None) -> Any:
        versions = self.environments.get(name)
        if not versions:
            return None
        if version is None:
            return versions[-1]
        return next((v for v in versions if str(v.version) == str(version)), None)

    def create_environment(self, environment: Any) -> Any:
        versions = self.environments.setdefault(environment.name, [])
        made = copy.deepcopy(environment)
        if made.version is None:
            made.version = str(len(versions) + 1)
        versions.append(made)
        return made

    def compute(self, name: str) -> Any:
        if name not in self.computes:
            raise ComputeNotFoundError(f"no compute cluster '{name}' in workspace '{WORKSPACE}'")
        return self.computes[name]

    def create_job(self, job: Any) -> Any:
        from azure.core.exceptions import HttpResponseError

        from tests.backends.azureml_v2_pipeline_nodes import FakePipelineJob, is_pipeline_job
        from tests.backends.azureml_v2_sweep_trials import FakeSweepJob, is_sweep_job

        self.create_requests += 1
        if self.fail_next_create is not None:
            error, self.fail_next_create = self.fail_next_create, None
            raise error
        name = str(job.name)
        if name in self.jobs:
            raise HttpResponseError(
                message="(UserError) A job with this name already exists. If you are trying "
                "to create a new job, use a different name. If you are trying to update an "
                "existing job, the existing job's Settings, Inputs, Outputs, Jobs, "
                "InputBindings, OutputBindings cannot be changed. Only description, tags, "
                "displayName, properties, and isArchived can be updated."
            )
        # A `command()` builder becomes its CommandJob as the SDK sends it
        # (azure/ai/ml/operations/_job_operations.py, create_or_update: `job._to_job()`).
        entity = job._to_job() if hasattr(job, "_to_job") else job
        if is_pipeline_job(entity):
            # What the SDK does before it sends a pipeline job: validate it locally, then make
            # its REST payload (azure/ai/ml/operations/_job_operations.py, create_or_update:
            # `self._validate(job, raise_on_failure=True)`, which runs `job._validate`).
            with sdk.quiet():
                entity._validate(raise_error=True)
                entity._to_rest_object()
            pipeline = FakePipelineJob(self, entity, self.pipeline_nodes(entity))
            self.jobs[name] = pipeline
            self.submitted.append((entity, []))
            return pipeline.as_entity()
        code = getattr(_trial_of(entity), "code", None)  # a sweep job's code is its trial's
        snapshot = _snapshot(Path(str(code))) if code else []
        outcome = self.outcomes.get(entry_script_of(entity), self.next_outcome)
        sweep = is_sweep_job(entity)  # its trials are sampled and started as it runs
        fake = (FakeSweepJob if sweep else FakeJob)(self, entity, outcome, snapshot=snapshot)
        self.jobs[name] = fake
        for index, child_outcome in enumerate(() if sweep else outcome.children):
            child_entity = copy.copy(_trial_of(entity))
            child_entity.name = f"{name}_{index}"
            child_entity.experiment_name = entity.experiment_name
            child = FakeJob(self, child_entity, child_outcome, parent=name)
            fake.children.append(child)
            self.jobs[child.name] = child
        self.submitted.append((entity, snapshot))
        if self.lose_next_create_answer:
            from azure.core.exceptions import ServiceResponseError

            self.lose_next_create_answer = False
            raise ServiceResponseError("Connection reset by peer while reading the response")
        return fake.as_entity()

    def start_trial(self, trial: FakeJob) -> FakeJob:
        """A sweep's trial (or a pipeline node's child job) as it starts.

        A stand-in whose jobs execute runs it instead.
        """
        return trial

    # ---- pipelines (tests/backends/azureml_v2_pipeline_nodes.py) ------------------------

    def pipeline_nodes(self, entity: Any) -> dict[str, Any]:
        """A pipeline job's nodes: its own, or its registered component's.

        Raises:
            ResourceNotFoundError: For a component that is not registered (as the service
                refuses the job).
        """
        component = getattr(entity, "component", None)
        if isinstance(component, str):
            component = self.component_entity(component)
        jobs = getattr(entity, "jobs", None) or getattr(component, "jobs", None) or {}
        return dict(jobs)

    def snapshot_of(self, node: Any) -> list[str]:
        """The files of a node's code the SDK uploads (`.amlignore` as it is now)."""
        code = getattr(node, "code", None)
        return _snapshot(Path(str(code))) if code else []

    def outcome_of(self, entity: Any) -> Outcome:
        """How a job behaves: by its entry script, else `next_outcome`."""
        return self.outcomes.get(entry_script_of(entity), self.next_outcome)

    def completed_node(self, key: str) -> FakeJob | None:
        """The newest completed child job that ran (not reused) with this reuse key."""
        for job in reversed(self.jobs.values()):
            properties = getattr(job.entity, "properties", None) or {}
            if (
                job.reuse_key == key
                and job.status == "Completed"
                and "azureml.reusedrunid" not in properties
            ):
                return job
        return None

    def default_output_path(self, job: str, output: str) -> str:
        """Where an output with no path of its own is written.

        The default datastore's `azureml/<job name>/<output name>/`, the default output
        path the Azure ML docs describe (not checked live).
        """
        return f"azureml://datastores/{DEFAULT_DATASTORE}/paths/azureml/{job}/{output}/"

    def job(self, name: str) -> Any:
        return self._job(name).as_entity()

    def _job(self, name: str) -> FakeJob:
        if name not in self.jobs:
            raise RunNotFoundError(f"no job '{name}' in workspace '{WORKSPACE}'")
        return self.jobs[name]

    def list_jobs(self, parent_job_name: str | None = None) -> list[Any]:
        """As `jobs.list(parent_job_name=...)`: the top-level jobs newest first, or one job's
        children (in the order they were made: the backend orders both itself)."""
        if parent_job_name is not None:
            children = self._job(parent_job_name).children
            return [child.as_entity() for child in children]
        return [job.as_entity() for job in reversed(self.jobs.values()) if job.parent is None]

    def cancel_job(self, name: str) -> None:
        self._job(name).cancel()

    def run_details(self, name: str) -> dict[str, Any]:
        job = self._job(name)
        job.poll()
        return job.details()

    # ---- components and schedules ---------------------------------------------------------

    def component(self, name: str, version: int | None = None) -> Any:
        versions = self.components.get(name) or []
        if version is None:
            return copy.copy(versions[-1]) if versions else None
        return next((copy.copy(v) for v in versions if str(v.version) == str(version)), None)

    def component_versions(self, name: str) -> list[Any]:
        return [copy.copy(v) for v in self.components.get(name) or []]

    def component_names(self) -> list[str]:
        return list(self.components)

    def create_component(self, component: Any) -> Any:
        """Registers a component version; its nodes' code is uploaded now (a copy here).

        A component version is immutable: the service refuses a version that exists
        (as it does a data asset's).
        """
        from azure.core.exceptions import ResourceExistsError

        # As `components.create_or_update` does before sending: validate locally
        # (azure/ai/ml/operations/_component_operations.py, `self._validate(component, ...)`).
        with sdk.quiet():
            component._validate(raise_error=True)
            component._to_rest_object()
        versions = self.components.setdefault(str(component.name), [])
        if component.version is None:
            component.version = str(len(versions) + 1)
        if any(str(v.version) == str(component.version) for v in versions):
            raise ResourceExistsError(
                f"(UserError) Conflict: component {component.name} version "
                f"{component.version} exists"
            )
        made = copy.copy(component)
        made._jobs = {}
        for node_name, node in (component.jobs or {}).items():
            node = copy.copy(node)
            if getattr(node, "code", None):
                uploaded = self._root / "components" / str(made.name) / str(made.version)
                node.code = str(_copy_snapshot(Path(str(node.code)), uploaded / node_name))
            made._jobs[node_name] = node
        made._id = (
            f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{RESOURCE_GROUP}/providers/"
            f"Microsoft.MachineLearningServices/workspaces/{WORKSPACE}/components/"
            f"{made.name}/versions/{made.version}"
        )
        versions.append(made)
        return copy.copy(made)

    def component_entity(self, reference: str) -> Any:
        """The component a job names (`azureml:<name>:<version>` or `azureml:<name>@latest`).

        Raises:
            ResourceNotFoundError: For one that is not registered.
        """
        from azure.core.exceptions import ResourceNotFoundError

        found = re.fullmatch(r"azureml:(?P<name>[^:@]+)(?::(?P<version>\d+)|@latest)", reference)
        component = None
        if found:
            version = int(found["version"]) if found["version"] else None
            component = self.component(found["name"], version)
        if component is None:
            raise ResourceNotFoundError(f"(UserError) component {reference} not found")
        return component

    def create_schedule(self, schedule: Any) -> Any:
        """Creates or replaces a schedule.

        A job it makes from a component must name one that exists (the service resolves it
        on creation).
        """
        job = schedule.create_job
        if isinstance(getattr(job, "component", None), str):
            self.component_entity(job.component)
        made = copy.copy(schedule)
        made._id = (
            f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{RESOURCE_GROUP}/providers/"
            f"Microsoft.MachineLearningServices/workspaces/{WORKSPACE}/schedules/{schedule.name}"
        )
        if made._is_enabled is None:  # the service's default: a new schedule is enabled
            made._is_enabled = True
        self.schedule_entities[str(schedule.name)] = made
        return copy.copy(made)

    def schedules(self) -> list[Any]:
        return [copy.copy(s) for s in self.schedule_entities.values()]

    def delete_schedule(self, name: str) -> None:
        self.schedule_entities.pop(name, None)

    def fire_schedule(self, name: str) -> str:
        """What the service does when a schedule fires; returns the job's name.

        It creates the job the schedule describes, under a name of its own.
        """
        job = copy.copy(self.schedule_entities[name].create_job)
        job.name = f"{name}-{uuid.uuid4().hex[:8]}"
        return str(self.create_job(job).name)

    def metrics(self, name: str) -> list[Metric]:
        from himl_tasks.backends.azureml_v2.metrics import read_mlflow_metrics

        job = self._job(name)
        if job.mlflow_run_id is None:
            return []
        return read_mlflow_metrics(self.tracking_uri, job.mlflow_run_id)


def entry_script_of(job: Any) -> str:
    """The script a command job's command runs (`python job.py ...`), else ""."""
    command = str(getattr(_trial_of(job), "command", "") or "")
    for word in shlex.split(command):
        if word.endswith(".py"):
            return word
    return ""


def _trial_of(job: Any) -> Any:
    """The command a job runs: a sweep's trial, or the job itself."""
    return getattr(job, "trial", None) or job


def _is_serverless(job: Any) -> bool:
    return getattr(job, "compute", None) in (None, "", "serverless")


def _snapshot(root: Path) -> list[str]:
    """The files the SDK would upload: `.amlignore` (else `.gitignore`) as it is now."""
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


def _copy_snapshot(root: Path, destination: Path) -> Path:
    """Copies the files the SDK would upload from `root` into `destination`."""
    for relative in _snapshot(root):
        target = destination / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / relative, target)
    return destination
