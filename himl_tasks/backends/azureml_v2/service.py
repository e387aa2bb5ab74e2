"""Every call the AzureML v2 backend makes to the AzureML service, in one narrow place.

The backend builds real azure-ai-ml entities offline (command and sweep jobs, data assets,
environments, datastores) and hands them to these calls, or reads the entities they return;
nothing else reaches the service. Tests replace `AzureMLV2Service` with a stand-in that behaves
like the service (tests/backends/azureml_v2_service.py); production uses `MLClientService`, one
`MLClient` call per method.

Run identity: a v2 job's `name` is unique in its workspace and is the run id; the job's
`experiment_name` is its experiment. A v2 job's files (its logs, `outputs/`, `logs/`) are in
the workspace's artifact store under `ExperimentRun/dcid.<name>/`; the backend reads them there
through the transfer engine, never through the SDK's download.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from himl_tasks.backends.azureml_v2 import sdk
from himl_tasks.errors import (
    ComputeNotFoundError,
    ConfigurationError,
    DatasetNotFoundError,
    DatastoreNotFoundError,
    RunNotFoundError,
)
from himl_tasks.runs import Metric

CANCEL_DEADLINE_SECONDS = 120.0
"""How long `cancel_job` waits for the service to accept a cancellation."""
SCHEDULE_DEADLINE_SECONDS = 120.0
"""How long a schedule's creation, disabling or deletion is waited for."""

_T = TypeVar("_T")


class AzureMLV2Service(Protocol):
    """The AzureML service (SDK v2) as the backend uses it.

    Attributes:
        subscription_id: The workspace's subscription.
        resource_group: The workspace's resource group.
        workspace_name: The workspace's name.
    """

    subscription_id: str
    resource_group: str
    workspace_name: str

    # ---- datastores -----------------------------------------------------------------------

    def datastore(self, name: str) -> Any:
        """A datastore with its credentials ("" for the workspace's default).

        Returns:
            An `azure.ai.ml.entities.AzureBlobDatastore` (or another Datastore entity) whose
            `credentials` hold the account key or SAS token (`include_secrets=True`).

        Raises:
            DatastoreNotFoundError: If there is none of that name.
        """
        ...

    def create_datastore(self, datastore: Any) -> Any:
        """Creates (or replaces) a datastore built offline; returns the created one."""
        ...

    def datastore_names(self) -> list[str]:
        """The names of the workspace's datastores."""
        ...

    # ---- data assets ----------------------------------------------------------------------

    def data(self, name: str, version: int | None) -> Any:
        """A data asset version (the latest when `version` is None), or None if no such asset.

        Returns:
            An `azure.ai.ml.entities.Data` (its `version` is text, as the service keeps it).

        Raises:
            DatasetNotFoundError: If the asset exists but the version does not.
        """
        ...

    def create_data(self, data: Any) -> Any:
        """Creates the data asset version `data` names (its `version` set); returns it.

        The service refuses a version that exists (data asset versions are immutable).
        """
        ...

    def data_names(self) -> list[str]:
        """The names of the workspace's data assets."""
        ...

    # ---- environments and compute ---------------------------------------------------------

    def environment(self, name: str, version: str | None = None) -> Any:
        """An environment version (the latest when `version` is None), or None if missing."""
        ...

    def create_environment(self, environment: Any) -> Any:
        """Creates an environment version built offline; returns the created one."""
        ...

    def compute(self, name: str) -> Any:
        """A compute target (e.g. `AmlCompute`, whose `tier` says low priority).

        Raises:
            ComputeNotFoundError: If there is none of that name.
        """
        ...

    # ---- jobs -----------------------------------------------------------------------------

    def create_job(self, job: Any) -> Any:
        """Submits a job built offline (its `name` set); returns the job as created.

        The code snapshot is taken from the job's `code` folder at this moment, with the
        `.amlignore` (else `.gitignore`) rules present there. The service refuses a job whose
        name exists (a job name is unique in a workspace).
        """
        ...

    def job(self, name: str) -> Any:
        """The job of that name (`azure.ai.ml.entities.Job`: status, tags, experiment, ...).

        Raises:
            RunNotFoundError: If there is none.
        """
        ...

    def list_jobs(self, parent_job_name: str | None = None) -> list[Any]:
        """The workspace's top-level jobs, or the children of `parent_job_name`.

        In the service's order (newest first for top-level jobs); each job's
        `creation_context.created_at` says when it was made.
        """
        ...

    def cancel_job(self, name: str) -> None:
        """Asks the service to cancel the job (`begin_cancel`), waiting for it to accept.

        Raises:
            RunNotFoundError: If there is no such job.
        """
        ...

    def run_details(self, name: str) -> dict[str, Any]:
        """The run history's details of a job, in the REST shape.

        Keys as the service sends them: `runId`, `status`, `parentRunId`, `createdTimeUtc`,
        `startTimeUtc`, `endTimeUtc`, and for a failed job `error` (`{"error": {"code",
        "message", "details", ...}}`): the `Job` entity has no error field.

        Raises:
            RunNotFoundError: If there is no such job.
        """
        ...

    def metrics(self, name: str) -> list[Metric]:
        """Every metric value the job logged through MLflow (its MLflow run id is its name).

        In the order logged: each metric's values by step, metrics by when first logged.
        """
        ...

    # ---- components (published pipelines) and schedules -----------------------------------

    def component(self, name: str, version: int | None = None) -> Any:
        """A component version (the latest when `version` is None), or None if there is none.

        Returns:
            An `azure.ai.ml.entities.Component` (a `PipelineComponent` for a pipeline).
        """
        ...

    def component_versions(self, name: str) -> list[Any]:
        """Every version of a component (none if there is no such component)."""
        ...

    def component_names(self) -> list[str]:
        """The names of the workspace's components."""
        ...

    def create_component(self, component: Any) -> Any:
        """Registers a component version built offline (its `version` set); returns it.

        The code of its nodes' components is uploaded as a job's is.
        """
        ...

    def create_schedule(self, schedule: Any) -> Any:
        """Creates or updates a `JobSchedule` built offline; returns it as created."""
        ...

    def schedules(self) -> list[Any]:
        """The workspace's schedules, enabled or not."""
        ...

    def delete_schedule(self, name: str) -> None:
        """Disables, then deletes, the schedule; no error if there is none."""
        ...


class MLClientService:
    """`AzureMLV2Service` on an `azure.ai.ml.MLClient`: each method one SDK call, translated.

    Args:
        ml_client: An `MLClient` for one workspace.
    """

    def __init__(self, ml_client: Any) -> None:
        self.ml_client = ml_client
        self.subscription_id = str(ml_client.subscription_id)
        self.resource_group = str(ml_client.resource_group_name)
        self.workspace_name = str(ml_client.workspace_name)

    def __repr__(self) -> str:
        return f"MLClientService(workspace={self.workspace_name!r})"

    def datastore(self, name: str) -> Any:
        """datastores.get(include_secrets=True), or get_default for ""."""
        operations = self.ml_client.datastores
        if not name:
            return _call(lambda: operations.get_default(include_secrets=True))
        try:
            return _call(lambda: operations.get(name, include_secrets=True))
        except _NotFoundError:
            known = ", ".join(sorted(self.datastore_names())) or "none"
            raise DatastoreNotFoundError(
                f"no datastore '{name}' in workspace '{self.workspace_name}'; known: {known}"
            ) from None

    def create_datastore(self, datastore: Any) -> Any:
        """datastores.create_or_update."""
        return _call(lambda: self.ml_client.datastores.create_or_update(datastore))

    def datastore_names(self) -> list[str]:
        """datastores.list (without secrets)."""
        return [str(each.name) for each in _call(lambda: list(self.ml_client.datastores.list()))]

    def data(self, name: str, version: int | None) -> Any:
        """data.get(name, version=...) or data.get(name, label="latest")."""
        try:
            if version is None:
                return _call(lambda: self.ml_client.data.get(name, label="latest"))
            return _call(lambda: self.ml_client.data.get(name, version=str(version)))
        except _NotFoundError:
            if version is None or self.data(name, None) is None:
                return None
            raise DatasetNotFoundError(
                f"data asset '{name}' has no version {version} in workspace '{self.workspace_name}'"
            ) from None

    def create_data(self, data: Any) -> Any:
        """data.create_or_update."""
        return _call(lambda: self.ml_client.data.create_or_update(data))

    def data_names(self) -> list[str]:
        """data.list(): one entry per data asset."""
        return [str(each.name) for each in _call(lambda: list(self.ml_client.data.list()))]

    def environment(self, name: str, version: str | None = None) -> Any:
        """environments.get(name, version=...) or label="latest"; None when missing."""
        operations = self.ml_client.environments
        try:
            if version is None:
                return _call(lambda: operations.get(name, label="latest"))
            return _call(lambda: operations.get(name, version=version))
        except _NotFoundError:
            return None

    def create_environment(self, environment: Any) -> Any:
        """environments.create_or_update."""
        return _call(lambda: self.ml_client.environments.create_or_update(environment))

    def compute(self, name: str) -> Any:
        """compute.get."""
        try:
            return _call(lambda: self.ml_client.compute.get(name))
        except _NotFoundError:
            raise ComputeNotFoundError(
                f"no compute cluster '{name}' in workspace '{self.workspace_name}'"
            ) from None

    def create_job(self, job: Any) -> Any:
        """jobs.create_or_update (which uploads the code snapshot, honouring .amlignore)."""
        return _call(lambda: self.ml_client.jobs.create_or_update(job))

    def job(self, name: str) -> Any:
        """jobs.get."""
        try:
            return _call(lambda: self.ml_client.jobs.get(name))
        except _NotFoundError:
            raise RunNotFoundError(
                f"no job '{name}' in workspace '{self.workspace_name}'"
            ) from None

    def list_jobs(self, parent_job_name: str | None = None) -> list[Any]:
        """jobs.list(parent_job_name=...)."""
        return _call(lambda: list(self.ml_client.jobs.list(parent_job_name=parent_job_name)))

    def cancel_job(self, name: str) -> None:
        """jobs.begin_cancel, waiting up to `CANCEL_DEADLINE_SECONDS` for the service."""
        try:
            poller = _call(lambda: self.ml_client.jobs.begin_cancel(name))
        except _NotFoundError:
            raise RunNotFoundError(
                f"no job '{name}' in workspace '{self.workspace_name}'"
            ) from None
        poller.wait(timeout=CANCEL_DEADLINE_SECONDS)

    def run_details(self, name: str) -> dict[str, Any]:
        """The run history's `get_run_details`, through the job operations' run client.

        `MLClient` reaches it only through a private attribute (`jobs._runs_operations`),
        as the SDK's own `jobs.stream` does (azure/ai/ml/operations/_job_ops_helper.py,
        `stream_logs_until_completion`).
        """
        runs = self.ml_client.jobs._runs_operations
        try:
            details = _call(lambda: runs.get_run_details(name))
        except _NotFoundError:
            raise RunNotFoundError(
                f"no job '{name}' in workspace '{self.workspace_name}'"
            ) from None
        return dict(details.as_dict())

    def metrics(self, name: str) -> list[Metric]:
        """The job's metrics from the workspace's MLflow tracking server.

        Needs the `azureml-mlflow` plugin, which teaches MLflow the workspace's `azureml://`
        tracking URI and signs its requests (with the sign-in it finds itself, azure-identity's
        default chain, not necessarily this client's credential: not checked here against a
        live workspace). It is not a dependency of himl-tasks: install it where the metrics
        of v2 jobs are read.

        Raises:
            ConfigurationError: If the plugin is missing.
        """
        from himl_tasks.backends.azureml_v2.metrics import read_mlflow_metrics

        workspace = _call(lambda: self.ml_client.workspaces.get(self.workspace_name))
        uri = str(workspace.mlflow_tracking_uri or "")
        if uri.startswith("azureml:"):
            try:
                importlib.metadata.distribution("azureml-mlflow")
            except importlib.metadata.PackageNotFoundError:
                raise ConfigurationError(
                    "reading the metrics of an AzureML v2 job needs the azureml-mlflow "
                    "package (pip install azureml-mlflow): it lets MLflow reach the "
                    "workspace's tracking server"
                ) from None
        return read_mlflow_metrics(uri, name)

    def component(self, name: str, version: int | None = None) -> Any:
        """components.get(name, version=...) or label="latest"; None when missing."""
        operations = self.ml_client.components
        try:
            if version is None:
                return _call(lambda: operations.get(name, label="latest"))
            return _call(lambda: operations.get(name, version=str(version)))
        except _NotFoundError:
            return None

    def component_versions(self, name: str) -> list[Any]:
        """components.list(name): the versions of one component."""
        try:
            return _call(lambda: list(self.ml_client.components.list(name)))
        except _NotFoundError:
            return []

    def component_names(self) -> list[str]:
        """components.list(): one entry per component."""
        return [str(each.name) for each in _call(lambda: list(self.ml_client.components.list()))]

    def create_component(self, component: Any) -> Any:
        """components.create_or_update (which uploads its nodes' code)."""
        return _call(lambda: self.ml_client.components.create_or_update(component))

    def create_schedule(self, schedule: Any) -> Any:
        """schedules.begin_create_or_update, waiting up to `SCHEDULE_DEADLINE_SECONDS`."""
        poller = _call(lambda: self.ml_client.schedules.begin_create_or_update(schedule))
        return _call(lambda: poller.result(timeout=SCHEDULE_DEADLINE_SECONDS))

    def schedules(self) -> list[Any]:
        """schedules.list(list_view_type=ALL): disabled ones too (the default: enabled)."""
        from azure.ai.ml._restclient.arm_ml_service.models import ScheduleListViewType

        operations = self.ml_client.schedules
        return _call(lambda: list(operations.list(list_view_type=ScheduleListViewType.ALL)))

    def delete_schedule(self, name: str) -> None:
        """schedules.begin_disable, then begin_delete: a schedule is deleted once disabled.

        Each is waited for up to `SCHEDULE_DEADLINE_SECONDS`.
        """
        operations = self.ml_client.schedules
        try:
            for begin in (operations.begin_disable, operations.begin_delete):
                poller = _call(lambda begin=begin: begin(name))  # type: ignore[misc]
                _call(lambda poller=poller: poller.result(timeout=SCHEDULE_DEADLINE_SECONDS))  # type: ignore[misc]
        except _NotFoundError:
            return


class _NotFoundError(Exception):
    """azure-core's ResourceNotFoundError, seen through `_call`."""


def _call(function: Callable[[], _T]) -> _T:
    """Runs an SDK call quietly; a 404 becomes `_NotFoundError`, for the caller to name.

    The SDK raises azure-core's `ResourceNotFoundError` itself for most calls, but wraps it
    for some: `data.get(name, label="latest")` of a missing asset raises an `MlException`
    whose cause is a `ValidationException` whose cause is the 404. The chain is searched.
    """
    from azure.core.exceptions import ResourceNotFoundError

    with sdk.quiet():
        try:
            return function()
        except Exception as error:
            cause: BaseException | None = error
            while cause is not None:
                if isinstance(cause, ResourceNotFoundError):
                    raise _NotFoundError() from None
                cause = cause.__cause__ or cause.__context__
            raise
