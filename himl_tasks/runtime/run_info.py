"""`get_run_info`: where this script runs and where its data is, inside a run or outside any."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from himl_tasks.datasets import DatasetConfig, as_dataset_config
from himl_tasks.runtime.himl_run_context import RUN_CONTEXT
from himl_tasks.runtime.in_job_platform import in_job_platform
from himl_tasks.runtime.run_context import AzureRunInfo


class DatasetSource(Protocol):
    """Where a script run outside any job gets its input datasets from (a backend)."""

    def local_dataset_folder(self, config: DatasetConfig, destination: Path | None = None) -> Path:
        """The dataset's files on this machine."""
        ...


def get_run_info(
    input_datasets: Sequence[DatasetConfig | str] = (),
    output_datasets: Sequence[DatasetConfig | str] = (),
    *,
    backend: DatasetSource | None = None,
) -> AzureRunInfo:
    """Describes where this script runs and where its data is.

    Inside a job, the folders come from the job, and `run` is hi-ml's `RUN_CONTEXT` (the
    backend's own `RunContext` is `current_run()`). Outside one (a plain `python script.py`),
    the given dataset configs' `local_folder`s are used. An input without one is fetched from
    `backend` when given (downloaded into its `target_folder`, else a temporary folder; or
    mounted, on AzureML, with `use_mounting`), else it is None. `outputs/` and `logs/` under
    the current folder are created, as hi-ml does.

    Args:
        input_datasets: The script's input datasets, used outside a job only.
        output_datasets: The script's output datasets, used outside a job only.
        backend: Where inputs without a `local_folder` come from, outside a job.

    Raises:
        ConfigurationError: If `HIML_IN_JOB` does not name a backend's in-job module.
    """
    platform = in_job_platform()
    if platform is not None:
        # hi-ml's run: azureml's own Run on AzureML, RUN_CONTEXT's recording run elsewhere.
        return dataclasses.replace(platform.run_info(), run=RUN_CONTEXT)
    output_folder, logs_folder = Path.cwd() / "outputs", Path.cwd() / "logs"
    output_folder.mkdir(exist_ok=True)
    logs_folder.mkdir(exist_ok=True)
    return AzureRunInfo(
        input_datasets=[_local_input(as_dataset_config(d), backend) for d in input_datasets],
        output_datasets=[as_dataset_config(d).local_folder for d in output_datasets],
        output_folder=output_folder,
        logs_folder=logs_folder,
        run=None,
        is_running_in_azure_ml=False,
    )


def _local_input(config: DatasetConfig, backend: DatasetSource | None) -> Path | None:
    # Which folder wins (local_folder, else target_folder, else a new one) is the backend's
    # one rule; without a backend only local_folder can say where the data is.
    return config.local_folder if backend is None else backend.local_dataset_folder(config)
