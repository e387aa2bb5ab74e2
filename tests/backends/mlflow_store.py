"""A real MLflow tracking store on SQLite, standing in for an AzureML workspace's MLflow server.

AzureML gives each v2 job an MLflow run whose id is the job's name (`mlflow.get_run(job_name)`
finds it: "Query & compare experiments and runs with MLflow", Azure Machine Learning docs), in
an MLflow experiment named as the job's experiment. MLflow's own SQL store makes up a random run
id (`SqlAlchemyStore.create_run`: `uuid.uuid4().hex`); this store creates the run under the
job's name instead, so that the backend reads a job's metrics by its name, as on AzureML.
"""

from __future__ import annotations

import threading
import warnings
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from unittest import mock

_CREATING = threading.Lock()


@contextmanager
def quiet_mlflow() -> Any:
    """MLflow 3.17's SQL store uses SQLAlchemy 2.1 loader options it deprecates (`noload`):
    warnings of the library, not of ours, which pytest's `error` filter would turn into failures."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        yield


class MlflowStore:
    """An MLflow tracking store in `folder` (`mlflow.db`, artifacts under `artifacts/`)."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.tracking_uri = f"sqlite:///{folder / 'mlflow.db'}"
        self.artifacts = folder / "artifacts"
        self._client: Any = None
        self.run_id = ""  # the run a test made, for the test's own use

    @property
    def client(self) -> Any:
        """An `MlflowClient` on the store (made on first use: mlflow takes seconds to import)."""
        if self._client is None:
            from mlflow.tracking import MlflowClient

            with quiet_mlflow():
                self._client = MlflowClient(tracking_uri=self.tracking_uri)
        return self._client

    def create_run(self, experiment: str, run_id: str) -> str:
        """Creates the MLflow run `run_id` in `experiment` (made when missing); returns its id."""
        from mlflow.store.tracking import sqlalchemy_store

        with quiet_mlflow():
            found = self.client.get_experiment_by_name(experiment)
            experiment_id = (
                found.experiment_id
                if found is not None
                else self.client.create_experiment(
                    experiment, artifact_location=(self.artifacts / experiment).as_uri()
                )
            )
            # Only the store's own `uuid` name is replaced, for this one call.
            chosen = SimpleNamespace(uuid4=lambda: SimpleNamespace(hex=run_id))
            with _CREATING, mock.patch.object(sqlalchemy_store, "uuid", chosen):
                run = self.client.create_run(experiment_id, run_name=run_id)
        created: str = run.info.run_id
        return created

    def metric_history(self, run_id: str, name: str) -> list[tuple[float, int]]:
        """The (value, step) pairs logged for a metric, in the order logged."""
        with quiet_mlflow():
            history = self.client.get_metric_history(run_id, name)
        return [(m.value, m.step) for m in sorted(history, key=lambda m: m.timestamp)]

    def tags(self, run_id: str) -> dict[str, str]:
        """The run's tags."""
        with quiet_mlflow():
            found: dict[str, str] = self.client.get_run(run_id).data.tags
        return found

    def artifact_folder(self, run_id: str) -> Path:
        """Where the run's artifacts are, on this machine."""
        with quiet_mlflow():
            uri = self.client.get_run(run_id).info.artifact_uri
        return Path(uri.removeprefix("file://"))
