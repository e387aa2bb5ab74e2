"""A hi-ml script run without a submission flag: it goes on in this process, as in hi-ml."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from himl_tasks.backends.base import Backend
from himl_tasks.datasets import DatasetConfig
from himl_tasks.errors import DatasetNotFoundError
from himl_tasks.runtime import AzureRunInfo
from himl_tasks.secret_reference import SecretReference

logger = logging.getLogger(__name__)

OUTPUTS_FOLDER_NAME = "outputs"
LOGS_FOLDER_NAME = "logs"


def plain_run_info(
    input_datasets: Sequence[DatasetConfig],
    output_datasets: Sequence[DatasetConfig],
    *,
    environment_variables: Mapping[str, str | SecretReference],
    create_output_folders: bool,
    dataset_backend: Callable[[], Backend],
) -> AzureRunInfo:
    """Prepares this process as hi-ml does for a plain run; returns where its data is.

    - `environment_variables` are set in `os.environ` (a `SecretReference`'s value read from
      the variable it names), all of them or, when one cannot be read, none;
    - `outputs/` and `logs/` in the current folder are created, unless
      `create_output_folders` is False (hi-ml 0.2 creates them whatever the flag says);
    - an input's `local_folder` wins; otherwise the dataset is brought from the workspace
      `dataset_backend()` gives (called only then): into its `target_folder`, else a new
      temporary folder. A dataset the workspace does not have is None, with one log line,
      so a script's `run_info.input_datasets[0] or Path("data")` goes on with its own files;
    - an output is its `local_folder`, else None.

    Raises:
        ConfigurationError: If the workspace cannot be reached (e.g. signing in fails), or a
            `SecretReference` names a variable that is not set; before anything changes.
    """
    # What can fail for a setting (a secret's variable unset, a workspace that cannot be
    # reached) fails before this process or the current folder changes.
    variables = {
        name: value.resolve() if isinstance(value, SecretReference) else value
        for name, value in environment_variables.items()
    }
    from_workspace = [config for config in input_datasets if config.local_folder is None]
    backend = dataset_backend() if from_workspace else None
    os.environ.update(variables)
    output_folder, logs_folder = Path.cwd() / OUTPUTS_FOLDER_NAME, Path.cwd() / LOGS_FOLDER_NAME
    if create_output_folders:
        output_folder.mkdir(exist_ok=True)
        logs_folder.mkdir(exist_ok=True)
    inputs = [
        config.local_folder if backend is None or config.local_folder is not None
        else _fetched(backend, config)
        for config in input_datasets
    ]  # fmt: skip
    return AzureRunInfo(
        input_datasets=inputs,
        output_datasets=[config.local_folder for config in output_datasets],
        output_folder=output_folder,
        logs_folder=logs_folder,
        run=None,
        is_running_in_azure_ml=False,
    )


def _fetched(backend: Backend, config: DatasetConfig) -> Path | None:
    try:
        return backend.local_dataset_folder(config)
    except DatasetNotFoundError as error:
        # hi-ml 0.1 gave None here, and its examples fall back on their own folder.
        logger.warning(
            "input dataset '%s' is not in %r (%s): run_info.input_datasets has None for it; "
            "give it a local_folder to use files on this machine",
            config.name,
            backend,
            error,
        )
        return None
