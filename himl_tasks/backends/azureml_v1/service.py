"""Every call the AzureML backend makes to the AzureML service, in one narrow place.

Everything else in the backend builds and reads real azureml-core objects offline; only these
calls reach the service. Tests replace `AzureMLService` with a stand-in that behaves like the
service; production uses `SdkService`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from himl_tasks.errors import (
    ComputeNotFoundError,
    DatasetNotFoundError,
    DatastoreNotFoundError,
    RunNotFoundError,
)


class AzureMLService(Protocol):
    """The AzureML service as the backend uses it.

    Attributes:
        workspace: The workspace object the service calls address.
    """

    workspace: Any

    def datastore(self, name: str) -> Any:
        """A registered datastore ("" for the workspace's default).

        Raises:
            DatastoreNotFoundError: If there is none of that name.
        """
        ...

    def register_datastore(self, datastore: Any) -> Any:
        """Registers a blob container datastore built offline; returns the registered one."""
        ...

    def dataset(self, name: str, version: int | None) -> Any:
        """A registered file dataset (latest when `version` is None), or None if missing.

        Raises:
            DatasetNotFoundError: If the dataset exists but the version does not.
        """
        ...

    def register_dataset(self, dataset: Any, name: str, tags: dict[str, str]) -> Any:
        """Registers a dataset built offline as the next version of `name` (1 if new)."""
        ...

    def environment(self, name: str) -> Any:
        """A registered environment (latest version), or None if there is none of that name."""
        ...

    def register_environment(self, environment: Any) -> Any:
        """Registers an environment; returns the registered one."""
        ...

    def add_private_wheel(self, path: Path) -> str:
        """Uploads a wheel to the workspace; returns the URL pip installs it from."""
        ...

    def check_compute(self, name: str) -> None:
        """Raises ComputeNotFoundError unless a compute target of that name exists."""
        ...

    def submit(
        self, experiment: str, config: Any, tags: dict[str, str], *, run_id: str | None = None
    ) -> Any:
        """Submits a run configuration to an experiment; returns the run.

        `run_id` names the run (default: the SDK makes one up); the service refuses a second
        run of an id that exists.
        """
        ...

    def run(self, run_id: str) -> Any:
        """The run with that id.

        Raises:
            RunNotFoundError: If there is none.
        """
        ...

    def list_runs(self, experiment: str | None) -> list[tuple[Any, str | None]]:
        """The runs of one experiment, or of every experiment, children included, newest first.

        Each run comes with its parent's id (None for a top-level run), read from the run's
        record as listed (no call per run). An experiment that does not exist has no runs.
        """
        ...

    def dataset_names(self) -> list[str]:
        """The names of the registered datasets."""
        ...

    def datastore_names(self) -> list[str]:
        """The names of the registered datastores."""
        ...

    def submit_pipeline(
        self, experiment: str, steps: list[Any], description: str, tags: dict[str, str]
    ) -> Any:
        """Submits a pipeline of the steps (`PythonScriptStep`s) to an experiment.

        Returns the `PipelineRun`. `description` travels in the request that creates the run.
        """
        ...

    def pipeline_runs(self, experiment: str) -> list[Any]:
        """The experiment's pipeline runs, newest first (none if it does not exist)."""
        ...

    def publish_pipeline(self, name: str, steps: list[Any], description: str, version: str) -> Any:
        """Publishes a pipeline of the steps; returns the `PublishedPipeline`."""
        ...

    def pipeline_endpoints(self) -> list[Any]:
        """The workspace's `PipelineEndpoint`s (each lists its published pipelines)."""
        ...

    def add_to_endpoint(self, name: str, published: Any, description: str) -> Any:
        """Makes `published` the default of endpoint `name` (made if new); returns it."""
        ...

    def submit_published(self, published: Any, experiment: str, tags: dict[str, str]) -> Any:
        """Submits a published pipeline to an experiment; returns the `PipelineRun`."""
        ...

    def schedules(self) -> list[Any]:
        """The workspace's pipeline schedules, active and disabled."""
        ...

    def create_schedule(
        self, name: str, endpoint_id: str, experiment: str, recurrence: Any, description: str
    ) -> Any:
        """Creates a schedule submitting a pipeline endpoint's default version; returns it."""
        ...

    def update_schedule(
        self, schedule: Any, recurrence: Any, description: str, *, active: bool
    ) -> Any:
        """Changes a schedule's recurrence, description and status; returns it."""
        ...


class SdkService:
    """`AzureMLService` through azureml-core: each method is one SDK call, errors translated.

    Args:
        workspace: An `azureml.core.Workspace`.
    """

    def __init__(self, workspace: Any) -> None:
        self.workspace = workspace

    def __repr__(self) -> str:
        return f"SdkService(workspace={self.workspace.name!r})"

    def datastore(self, name: str) -> Any:
        """Datastore.get, or the workspace's default for ""."""
        from azureml.core import Datastore
        from azureml.exceptions import UserErrorException

        if not name:
            return self.workspace.get_default_datastore()
        try:
            return Datastore.get(self.workspace, name)
        except UserErrorException:
            known = ", ".join(sorted(self.workspace.datastores)) or "none"
            raise DatastoreNotFoundError(
                f"no datastore '{name}' in workspace '{self.workspace.name}'; known: {known}"
            ) from None

    def register_datastore(self, datastore: Any) -> Any:
        """Datastore.register_azure_blob_container, replacing one of the same name."""
        from azureml.core import Datastore

        return Datastore.register_azure_blob_container(
            self.workspace,
            datastore.name,
            datastore.container_name,
            datastore.account_name,
            sas_token=datastore.sas_token,
            account_key=datastore.account_key,
            endpoint=datastore.endpoint,
            protocol=datastore.protocol,
            overwrite=True,
        )

    def dataset(self, name: str, version: int | None) -> Any:
        """Dataset.get_by_name; None when there is no dataset of that name."""
        from azureml.core import Dataset
        from azureml.exceptions import UserErrorException

        try:
            return Dataset.get_by_name(self.workspace, name, version=version or "latest")
        except UserErrorException as error:
            if version is None or "version" not in str(error).lower():
                return None
            raise DatasetNotFoundError(
                f"dataset '{name}' has no version {version} in workspace '{self.workspace.name}'"
            ) from None

    def register_dataset(self, dataset: Any, name: str, tags: dict[str, str]) -> Any:
        """Dataset.register as a new version."""
        return dataset.register(self.workspace, name, tags=tags, create_new_version=True)

    def environment(self, name: str) -> Any:
        """Environment.get; None when there is none of that name."""
        from azureml.core import Environment
        from azureml.exceptions import UserErrorException

        try:
            return Environment.get(self.workspace, name)
        except UserErrorException:
            return None

    def register_environment(self, environment: Any) -> Any:
        """Environment.register."""
        return environment.register(self.workspace)

    def add_private_wheel(self, path: Path) -> str:
        """Environment.add_private_pip_wheel (an existing wheel of that name is reused)."""
        from azureml.core import Environment

        return str(Environment.add_private_pip_wheel(self.workspace, str(path), exist_ok=True))

    def check_compute(self, name: str) -> None:
        """Looks the name up among the workspace's compute targets."""
        if name not in self.workspace.compute_targets:
            known = ", ".join(sorted(self.workspace.compute_targets)) or "none"
            raise ComputeNotFoundError(
                f"no compute cluster '{name}' in workspace '{self.workspace.name}'; known: {known}"
            )

    def submit(
        self, experiment: str, config: Any, tags: dict[str, str], *, run_id: str | None = None
    ) -> Any:
        """Experiment.submit (with `run_id`, passed on to the config's submit function)."""
        from azureml.core import Experiment

        named = {"run_id": run_id} if run_id is not None else {}
        return Experiment(self.workspace, experiment).submit(config, tags=tags, **named)

    def run(self, run_id: str) -> Any:
        """Run.get."""
        from azureml.core import Run
        from azureml.exceptions import ServiceException, UserErrorException

        try:
            return Run.get(self.workspace, run_id)
        except (ServiceException, UserErrorException):
            raise RunNotFoundError(
                f"no run '{run_id}' in workspace '{self.workspace.name}'"
            ) from None

    def list_runs(self, experiment: str | None) -> list[tuple[Any, str | None]]:
        """Experiment.get_runs(include_children=True) over one experiment or Experiment.list."""
        from azureml.core import Experiment

        if experiment is None:
            experiments = list(Experiment.list(self.workspace))
        elif experiment in self.workspace.experiments:
            experiments = [Experiment(self.workspace, experiment)]
        else:
            experiments = []
        found = []
        for each in experiments:
            for run in each.get_runs(include_children=True):
                # Run.parent would fetch the parent run; the listed record names its id.
                record = getattr(run, "_run_dto", None) or {}
                found.append((run, record.get("parent_run_id")))
        return found

    def dataset_names(self) -> list[str]:
        """Dataset.get_all: the registered datasets, keyed by name."""
        from azureml.core import Dataset

        return [str(name) for name in Dataset.get_all(self.workspace)]

    def datastore_names(self) -> list[str]:
        """Workspace.datastores: the registered datastores, keyed by name."""
        return [str(name) for name in self.workspace.datastores]

    def submit_pipeline(
        self, experiment: str, steps: list[Any], description: str, tags: dict[str, str]
    ) -> Any:
        """Experiment.submit(Pipeline(workspace, steps, description=description), tags=tags)."""
        from azureml.core import Experiment
        from azureml.pipeline.core import Pipeline

        pipeline = Pipeline(self.workspace, steps, description=description)
        return Experiment(self.workspace, experiment).submit(pipeline, tags=tags)

    def pipeline_runs(self, experiment: str) -> list[Any]:
        """Experiment.get_runs(type="azureml.PipelineRun")."""
        from azureml.core import Experiment

        if experiment not in self.workspace.experiments:
            return []
        return list(Experiment(self.workspace, experiment).get_runs(type="azureml.PipelineRun"))

    def publish_pipeline(self, name: str, steps: list[Any], description: str, version: str) -> Any:
        """Pipeline.publish."""
        from azureml.pipeline.core import Pipeline

        pipeline = Pipeline(self.workspace, steps, description=name)
        return pipeline.publish(name=name, description=description, version=version)

    def pipeline_endpoints(self) -> list[Any]:
        """PipelineEndpoint.list (disabled ones too)."""
        from azureml.pipeline.core import PipelineEndpoint

        return list(PipelineEndpoint.list(self.workspace, active_only=False))

    def add_to_endpoint(self, name: str, published: Any, description: str) -> Any:
        """PipelineEndpoint.publish for a new endpoint, else PipelineEndpoint.add_default."""
        from azureml.pipeline.core import PipelineEndpoint

        endpoint = next((e for e in self.pipeline_endpoints() if e.name == name), None)
        if endpoint is None:
            return PipelineEndpoint.publish(self.workspace, name, description, published)
        endpoint.add_default(published)
        return endpoint

    def submit_published(self, published: Any, experiment: str, tags: dict[str, str]) -> Any:
        """Experiment.submit(published_pipeline, tags=tags)."""
        from azureml.core import Experiment

        return Experiment(self.workspace, experiment).submit(published, tags=tags)

    def schedules(self) -> list[Any]:
        """Schedule.list(active_only=False)."""
        from azureml.pipeline.core import Schedule

        return list(Schedule.list(self.workspace, active_only=False))

    def create_schedule(
        self, name: str, endpoint_id: str, experiment: str, recurrence: Any, description: str
    ) -> Any:
        """Schedule.create_for_pipeline_endpoint."""
        from azureml.pipeline.core import Schedule

        return Schedule.create_for_pipeline_endpoint(
            self.workspace,
            name,
            endpoint_id,
            experiment,
            recurrence=recurrence,
            description=description,
            wait_for_provisioning=True,
        )

    def update_schedule(
        self, schedule: Any, recurrence: Any, description: str, *, active: bool
    ) -> Any:
        """Schedule.update (status "Active" or "Disabled")."""
        schedule.update(
            description=description,
            recurrence=recurrence,
            status="Active" if active else "Disabled",
            wait_for_provisioning=True,
        )
        return schedule
