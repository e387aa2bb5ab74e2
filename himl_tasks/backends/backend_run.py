"""A run as hi-ml's users handle it (azureml's `Run`), built only on a backend's primitives.

hi-ml's functions hand users an `azureml.core.Run` (`fetch_run`, `get_most_recent_run`,
`after_submission`), and their notebooks call its methods. On a backend other than AzureML v1,
`Backend.run_object` gives this class instead: the members hi-ml's documentation and examples
use, with the behaviour of azureml-core's `Run` (azureml/core/run.py in azureml-core 1.61, cited
per member), on top of `Backend` primitives only, so it works the same on every backend.
"""

from __future__ import annotations

import functools
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from himl_tasks.errors import InvalidInputError, JobFailedError, RemoteFilesNotFoundError
from himl_tasks.runs import Metric, RunRef, RunState, RunStatus


class RunsBackend(Protocol):
    """The `Backend` methods a `BackendRun` is built on (`Backend` has them all).

    A protocol rather than `Backend` itself, which creates `BackendRun`s (no import cycle).
    """

    def get_state(self, ref: RunRef) -> RunState:
        """The run's current state."""
        ...

    def get_metrics(self, ref: RunRef) -> list[Metric]:
        """Every metric value the run logged, in order."""
        ...

    def run_tags(self, ref: RunRef) -> dict[str, str]:
        """The run's tags."""
        ...

    def list_files(self, ref: RunRef, prefix: str = "") -> list[str]:
        """Names of the run's files starting with `prefix`."""
        ...

    def download_files(
        self, ref: RunRef, prefix: str, destination: Path, *, validate_checksum: bool = False
    ) -> Any:
        """Downloads the run's files starting with `prefix`, keeping their names."""
        ...

    def watch(
        self,
        ref: RunRef,
        *,
        timeout_seconds: float | None = None,
        on_line: Callable[[str], None] | None = None,
    ) -> RunState:
        """Waits for the run to end, passing each log line to `on_line`."""
        ...

    def cancel(self, ref: RunRef) -> None:
        """Cancels the run and its unfinished children."""
        ...

    def child_runs(self, ref: RunRef) -> list[RunRef]:
        """The run's children, oldest first."""
        ...

    def run_object(self, ref: RunRef) -> Any:
        """The run as hi-ml hands it to users."""
        ...


@dataclass(frozen=True)
class RunExperiment:
    """The experiment a run belongs to (azureml's `Run.experiment`; users read its `name`)."""

    name: str


class BackendRun:
    """A run of any backend, with the members of azureml's `Run` that hi-ml's users call.

    Attributes:
        backend: The backend the run belongs to.
        ref: The run.
    """

    runs_on_azureml = False
    """Not one of AzureML's runs (what `is_running_in_azure_ml(run)` reads)."""

    def __init__(self, backend: RunsBackend, ref: RunRef) -> None:
        self.backend = backend
        self.ref = ref

    def __repr__(self) -> str:
        return f"Run(experiment={self.ref.experiment!r}, id={self.ref.run_id!r})"

    @property
    def id(self) -> str:
        """The run id (azureml: `Run.id`, the id unique in its experiment)."""
        return self.ref.run_id

    @property
    def experiment(self) -> RunExperiment:
        """The run's experiment; `run.experiment.name` is its name (azureml: `Run.experiment`)."""
        return RunExperiment(self.ref.experiment)

    @property
    def display_name(self) -> str:
        """The run's display name: its id, as no backend primitive keeps another one."""
        return self.ref.run_id

    @property
    def status(self) -> str:
        """The run's current status, e.g. "Running" (azureml: `Run.status`)."""
        return self.get_status()

    def get_status(self) -> str:
        """Fetches the run's latest status, with AzureML's names (azureml: `Run.get_status`)."""
        return str(self.backend.get_state(self.ref).status)

    def get_details(self) -> dict[str, Any]:
        """The run's id, status, times and, once it failed, its error.

        azureml's `Run.get_details` returns a dict with `runId`, `status`, `startTimeUtc`,
        `endTimeUtc` (only once ended) and, for a failed run, `error`; these keys are kept.
        """
        return _details(self.backend.get_state(self.ref))

    def get_metrics(self, name: str | None = None) -> dict[str, Any]:
        """The logged metrics: name -> value, or a list of values for a name logged repeatedly.

        As azureml's `Run.get_metrics` (its `MetricsClient.dto_to_metrics_dict` makes a list
        once a name has a second value), in the order they were logged.
        """
        metrics: dict[str, Any] = {}
        for metric in self.backend.get_metrics(self.ref):
            if name is not None and metric.name != name:
                continue
            if metric.name not in metrics:
                metrics[metric.name] = metric.value
            elif isinstance(metrics[metric.name], list):
                metrics[metric.name].append(metric.value)
            else:
                metrics[metric.name] = [metrics[metric.name], metric.value]
        return metrics

    def get_tags(self) -> dict[str, str]:
        """The run's tags (azureml: `Run.get_tags`)."""
        return self.backend.run_tags(self.ref)

    def get_file_names(self) -> list[str]:
        """The names of the run's files, e.g. `outputs/model.pt` (azureml: `get_file_names`)."""
        return self.backend.list_files(self.ref)

    def download_file(self, name: str, output_file_path: str | Path | None = None) -> None:
        """Downloads one of the run's files to `output_file_path`, checksums checked.

        As azureml's `Run.download_file`, the default path is the file's base name in the
        current folder.

        Raises:
            RemoteFilesNotFoundError: If the run has no file of that name.
        """
        if name not in self.backend.list_files(self.ref, name):
            raise RemoteFilesNotFoundError(
                f"run {self.ref}", f"no file '{name}'; get_file_names() lists the run's files"
            )
        target = Path(output_file_path) if output_file_path is not None else Path(Path(name).name)
        target.parent.mkdir(parents=True, exist_ok=True)
        # The transfer engine keeps full names under a folder: fetch into a temporary folder
        # beside the target (same file system), then move the one file into place.
        with tempfile.TemporaryDirectory(dir=target.parent, prefix=".himl-download-") as folder:
            self.backend.download_files(self.ref, name, Path(folder), validate_checksum=True)
            shutil.move(Path(folder) / name, target)

    def download_files(
        self,
        prefix: str | None = None,
        output_directory: str | Path | None = None,
        *,
        append_prefix: bool = True,
    ) -> None:
        """Downloads the run's files starting with `prefix`, keeping their full names.

        As azureml's `Run.download_files` (`append_prefix=True`, its default): files land at
        `output_directory/<name>`; no prefix means every file; nothing matching is an error
        (azureml passes `fail_on_not_found=True`).

        Raises:
            InvalidInputError: For `append_prefix=False` (not offered here).
            RemoteFilesNotFoundError: If no file matches.
        """
        if not append_prefix:
            raise InvalidInputError(
                "download_files(append_prefix=False) is not offered: files keep their full "
                "names under output_directory"
            )
        destination = Path(output_directory) if output_directory is not None else Path.cwd()
        self.backend.download_files(self.ref, prefix or "", destination, validate_checksum=True)

    def get_portal_url(self) -> str:
        """Where a person can look at the run (AzureML Studio; a local run's folder)."""
        return self.ref.portal_url or self.backend.get_state(self.ref).portal_url

    def wait_for_completion(
        self,
        show_output: bool = False,
        wait_post_processing: bool = False,
        raise_on_error: bool = True,
        *,
        timeout_seconds: float | None = None,
    ) -> dict[str, Any]:
        """Waits for the run to end; returns `get_details()`.

        As azureml's `Run.wait_for_completion`: `show_output` streams the run's log to stdout,
        and a failed run raises when `raise_on_error` (azureml raises its
        `ActivityFailedException`; here `JobFailedError`). Unlike azureml it waits at most
        `timeout_seconds` (default: the backend's `default_timeout_seconds`).
        `wait_post_processing` is accepted for azureml's signature: a backend's terminal status
        already includes uploading the run's files.

        Raises:
            JobFailedError: If the run failed and `raise_on_error`.
            JobTimeoutError: If it has not ended by the deadline.
        """
        del wait_post_processing
        on_line = functools.partial(print, flush=True) if show_output else None
        state = self.backend.watch(self.ref, timeout_seconds=timeout_seconds, on_line=on_line)
        if raise_on_error and state.status is RunStatus.FAILED:
            raise JobFailedError(state)
        return _details(state)

    def cancel(self) -> None:
        """Cancels the run and its unfinished children (azureml: `Run.cancel`)."""
        self.backend.cancel(self.ref)

    def get_children(self) -> list[Any]:
        """The run's child runs (a sweep's trials), as run objects (azureml: `get_children`)."""
        return [self.backend.run_object(child) for child in self.backend.child_runs(self.ref)]


def _details(state: RunState) -> dict[str, Any]:
    details: dict[str, Any] = {"runId": state.ref.run_id, "status": str(state.status)}
    if state.started_at is not None:
        details["startTimeUtc"] = state.started_at.isoformat()
    if state.ended_at is not None:
        details["endTimeUtc"] = state.ended_at.isoformat()
    if state.status is RunStatus.FAILED:
        # azureml's details carry the service's error document under "error".
        details["error"] = {"error": {"message": state.error}}
    return details
