"""The AzureML (SDK v1) half of `himl_tasks.runtime`: used only inside an AzureML run.

Inputs and outputs are found under hi-ml's names, `INPUT_<i>` and `OUTPUT_<i>`
(`himl_tasks.job_variables`), which the AzureML backend gives them when it submits the job.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from himl_tasks import job_variables
from himl_tasks.errors import ConfigurationError
from himl_tasks.runtime import AzureRunInfo

if TYPE_CHECKING:
    from himl_tasks.backends.base import Backend


@dataclass(frozen=True)
class AzureMLRunContext:
    """An AzureML run seen from inside its job: it wraps `Run.get_context()`."""

    run: Any
    run_id: str
    experiment: str
    attempt: int = 1

    @property
    def sdk_run(self) -> Any:
        """The `Run` object of azureml itself: hi-ml's `RUN_CONTEXT` inside an AzureML run."""
        return self.run

    def log_metrics(self, values: Mapping[str, float | str], step: int | None = None) -> None:
        """Logs each value to the AzureML run (a series when a step is given)."""
        for name, value in values.items():
            if step is None:
                self.run.log(name, value)
            else:
                self.run.log_row(name, step=step, value=value)

    def log_image(self, name: str, path: Path) -> None:
        """Logs the image file to the AzureML run (`Run.log_image`)."""
        self.run.log_image(name, path=str(path))


def run_context() -> AzureMLRunContext:
    """The current AzureML run.

    Raises:
        ConfigurationError: The environment says this is an AzureML run, but the SDK finds
            none (stale `AZUREML_RUN_ID` / `HIML_IN_JOB` in a plain shell).
    """
    from azureml.core import Run

    run = Run.get_context()
    experiment = getattr(run, "experiment", None)
    if experiment is None:  # the SDK's offline run: this process is in no AzureML run
        raise ConfigurationError(
            f"{job_variables.AZUREML_RUN_ID} or {job_variables.IN_JOB} says this process is "
            "an AzureML run's job, but it is not inside an AzureML run (the SDK finds none): "
            "unset them to run the script outside any run"
        )
    return AzureMLRunContext(run=run, run_id=run.id, experiment=experiment.name)


def run_info() -> AzureRunInfo:
    """Where the data of the current AzureML run is."""
    context = run_context()
    inputs: Mapping[str, Any] = context.run.input_datasets
    outputs: Mapping[str, Any] = getattr(context.run, "output_datasets", {}) or {}
    return AzureRunInfo(
        input_datasets=_numbered(inputs, job_variables.azureml_input_name),
        output_datasets=_numbered(outputs, job_variables.azureml_output_name),
        output_folder=Path.cwd() / "outputs",
        logs_folder=Path.cwd() / "logs",
        is_running_in_azure_ml=True,
    )


def _numbered(found: Mapping[str, Any], key: Callable[[int], str]) -> list[Path | None]:
    count = 0
    while key(count) in found:
        count += 1
    return [Path(found[key(i)]) for i in range(count)]


def current_workspace_backend() -> Backend:
    """The AzureML backend on the workspace of the run this process belongs to."""
    from azureml.core import Run

    from himl_tasks.backends.azureml_v1 import AzureMLV1Backend

    return AzureMLV1Backend(Run.get_context().experiment.workspace)


def fetch_resumed_checkpoint(recovery_id: str, folder: Path) -> None:
    """Copies the latest recovery checkpoint of the run being resumed into `folder`.

    AzureML restores `outputs/` only when it restarts a run itself; a resubmitted job (a new
    run with `resume_from`) fetches its predecessor's checkpoint here, through the transfer
    engine with checksums, on local rank 0 (the others wait at a barrier).
    """
    # Only a resumed job pays for the transfer engine.
    from himl_tasks.backends.checkpoint_files import fetch_latest_recovery_checkpoint

    fetch_latest_recovery_checkpoint(current_workspace_backend(), recovery_id, folder)
