"""The Backend protocol: what every place that runs jobs provides."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol

from himl_tasks.datasets import DatasetConfig, ResolvedDataset
from himl_tasks.job_spec import JobSpec
from himl_tasks.run_plan import RunPlan
from himl_tasks.runs import Metric, RunRef, RunState
from himl_tasks.storage import Datastore, TransferReport
from himl_tasks.sweeps import SweepSpec


class Backend(Protocol):
    """A workspace that runs jobs and keeps datasets: the local one, or AzureML."""

    name: str
    max_poll_seconds: float
    """The longest sensible pause between state checks of a run on this backend."""

    def plan(self, spec: JobSpec) -> RunPlan:
        """Prepares a job once: checks it, selects its snapshot, resolves its inputs.

        See `himl_tasks.backends.planning.plan_run`.
        """
        ...

    def submit(self, job: JobSpec | RunPlan, *, submission_id: str | None = None) -> RunRef:
        """Starts a job (a spec is planned first); returns at once with its run.

        With `submission_id`, submitting is idempotent: the id is recorded with the run when
        it is made, and a submission whose id already has a run returns that run.
        """
        ...

    def find_submission(self, submission_id: str) -> RunRef | None:
        """The run submitted under `submission_id`, or None if there is none."""
        ...

    def check_compute(self, name: str) -> None:
        """Raises unless a job can name this compute cluster (for checks before side effects).

        Raises:
            ComputeNotFoundError: No such cluster.
            InvalidInputError: The name cannot be used here (e.g. "" on AzureML).
        """
        ...

    def get_run_ref(self, recovery_id: str) -> RunRef:
        """Finds a run by `experiment:run_id` or bare `run_id`."""
        ...

    def get_state(self, ref: RunRef) -> RunState:
        """Returns the run's current state."""
        ...

    def log_reader(self, ref: RunRef) -> Callable[[], bytes]:
        """A function returning the bytes the run's driver log gained since its last call."""
        ...

    def iter_logs(self, ref: RunRef, *, follow: bool = False) -> Iterator[str]:
        """Yields the run's driver log lines; with `follow`, until the run ends."""
        ...

    def cancel(self, ref: RunRef) -> None:
        """Cancels the run (no effect on a finished one)."""
        ...

    def list_files(self, ref: RunRef, prefix: str = "") -> list[str]:
        """Names of the run's files (outputs/, logs/, azureml-logs/) starting with `prefix`."""
        ...

    def download_files(
        self, ref: RunRef, prefix: str, destination: Path, *, validate_checksum: bool = False
    ) -> TransferReport:
        """Downloads the run's files starting with `prefix`, keeping their names."""
        ...

    def get_metrics(self, ref: RunRef) -> list[Metric]:
        """Every metric value the run logged, in order."""
        ...

    def submit_sweep(
        self, job: JobSpec | RunPlan, sweep: SweepSpec, *, submission_id: str | None = None
    ) -> RunRef:
        """Starts a hyperparameter sweep around a job; its trials are the run's children.

        With `submission_id`, idempotent as `submit` is: the sweep's run is recorded with it.
        """
        ...

    def child_runs(self, ref: RunRef) -> list[RunRef]:
        """The run's children (e.g. the trials of a sweep)."""
        ...

    def resolve_dataset(self, config: DatasetConfig) -> ResolvedDataset:
        """Finds the dataset version a config names, creating version 1 from its folder."""
        ...

    def run_outputs(self, ref: RunRef) -> list[ResolvedDataset]:
        """The dataset versions the run registered (its output datasets)."""
        ...

    def register_dataset(
        self, name: str, datastore: str, path: str, *, created_by_run: str | None = None
    ) -> ResolvedDataset:
        """Registers the files under `path` as the next version of a dataset."""
        ...

    def datastore(self, name: str = "") -> Datastore:
        """The datastore of that name ("" for the default)."""
        ...
