"""The local backend's half of `himl_tasks.runtime`: used only inside a local run.

The supervisor tells the job everything through `HIML_*` variables (`himl_tasks.job_variables`):
the workspace, the run, its attempt and the folders of its datasets. Metrics go into the
workspace's registry. A resumed run's checkpoint is restored by the backend before the job
starts, so nothing is fetched from inside the job.
"""

from __future__ import annotations

import itertools
import os
import re
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from himl_tasks import job_variables
from himl_tasks.errors import ConfigurationError
from himl_tasks.runtime import AzureRunInfo

# An image's name becomes a file name: anything but these characters becomes "_", so a name
# can neither leave the images folder nor make a name the file system refuses.
_UNSAFE_FILE_CHARACTERS = re.compile(r"[^A-Za-z0-9._-]")


@dataclass(frozen=True)
class LocalRunContext:
    """A run of the local backend, seen from inside its job."""

    workspace: Path
    run_id: str
    experiment: str
    attempt: int
    logs_folder: Path | None = None

    @property
    def sdk_run(self) -> None:
        """None: the local backend has no SDK run object."""
        return None

    def log_metrics(self, values: Mapping[str, float | str], step: int | None = None) -> None:
        """Records metric values in the workspace's registry, for this attempt (text as text)."""
        from himl_tasks.backends.local.registry import Registry  # only jobs that log pay for it

        rows: list[tuple[str, float | str, int | None]] = [
            (name, value if isinstance(value, str) else float(value), step)
            for name, value in values.items()
        ]
        Registry(self.workspace).log_metrics(self.run_id, self.attempt, rows)

    def log_image(self, name: str, path: Path) -> None:
        """Copies the image into `logs/images/<name><suffix>`, among the run's files.

        Every image logged is kept, as AzureML keeps each one logged under a name: a name
        logged again gets `<name>_2<suffix>`, `<name>_3<suffix>`, ..., and a file already in
        the folder (the script's own) is never written over. An image that is already there,
        logged as it is, stays as it is.

        Raises:
            ConfigurationError: If the supervisor did not say where the run's logs go.
        """
        if self.logs_folder is None:
            raise ConfigurationError(
                f"the environment variable {job_variables.LOGS_FOLDER} is not set, but "
                f"{job_variables.IN_JOB} says this process is a local run's job; the local "
                "backend sets both when it starts a job"
            )
        images = self.logs_folder / "images"
        images.mkdir(parents=True, exist_ok=True)
        safe_name = _UNSAFE_FILE_CHARACTERS.sub("_", name).lstrip(".") or "image"
        suffix = path.suffix or ".png"
        for number in itertools.count(1):
            kept = images / (
                f"{safe_name}{suffix}" if number == 1 else f"{safe_name}_{number}{suffix}"
            )
            if kept.exists() and kept.samefile(path):
                return
            try:
                # Created exclusively: another process of the job may log the same name.
                with kept.open("xb") as copy, path.open("rb") as image:
                    shutil.copyfileobj(image, copy)
                return
            except FileExistsError:
                continue


def run_context() -> LocalRunContext:
    """The local run this process belongs to.

    Raises:
        ConfigurationError: If a variable the supervisor sets is missing.
    """
    return LocalRunContext(
        workspace=Path(_required(job_variables.WORKSPACE)),
        run_id=_required(job_variables.RUN_ID),
        experiment=os.environ.get(job_variables.EXPERIMENT, ""),
        attempt=int(os.environ.get(job_variables.ATTEMPT, "1")),
        logs_folder=Path(logs) if (logs := os.environ.get(job_variables.LOGS_FOLDER)) else None,
    )


def run_info() -> AzureRunInfo:
    """Where the data of the current local run is.

    Raises:
        ConfigurationError: If a variable the supervisor sets is missing.
    """
    return AzureRunInfo(
        input_datasets=_folders(job_variables.INPUT_DATASET_COUNT, job_variables.input_dataset),
        output_datasets=_folders(job_variables.OUTPUT_DATASET_COUNT, job_variables.output_dataset),
        output_folder=Path(_required(job_variables.OUTPUT_FOLDER)),
        logs_folder=Path(_required(job_variables.LOGS_FOLDER)),
        is_running_in_azure_ml=False,
    )


def fetch_resumed_checkpoint(recovery_id: str, folder: Path) -> None:
    """Does nothing: `LocalBackend` restores the resumed run's checkpoint before the job starts."""


def _folders(count_variable: str, variable: Callable[[int], str]) -> list[Path | None]:
    count = int(os.environ.get(count_variable, "0"))
    return [
        Path(os.environ[variable(i)]) if variable(i) in os.environ else None for i in range(count)
    ]


def _required(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise ConfigurationError(
            f"the environment variable {name} is not set, but {job_variables.IN_JOB} says this "
            "process is a local run's job; the local backend sets both when it starts a job"
        )
    return value
