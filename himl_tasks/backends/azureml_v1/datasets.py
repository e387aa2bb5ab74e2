"""Datasets as AzureML jobs consume and produce them, with hi-ml's names and defaults."""

from __future__ import annotations

from typing import Any

from himl_tasks.datasets import DatasetConfig
from himl_tasks.job_variables import azureml_input_name, azureml_output_name

RUN_ID_PLACEHOLDER = "{run-id}"


def dataset_from_folder(aml_datastore: Any, folder: str) -> Any:
    """A file dataset of everything under `folder/` in a datastore (built offline)."""
    from azureml.core import Dataset

    return Dataset.File.from_files(path=[(aml_datastore, f"{folder}/**")], validate=False)


def input_consumption(dataset: Any, config: DatasetConfig, index: int) -> Any:
    """How the job sees input `index`: downloaded (the default) or mounted, under `INPUT_<i>`.

    `target_folder`, when set, is where the files appear on the compute node.
    """
    return _consumed(dataset.as_named_input(azureml_input_name(index)), config)


def handed_on_input(output: Any, config: DatasetConfig, index: int) -> Any:
    """A pipeline step's input `index` that an upstream step's output (`output`) writes.

    `OutputFileDatasetConfig.as_input` hands the version the upstream step registers on
    completion to the reading step, downloaded or mounted as for any input.
    """
    return _consumed(output.as_input(azureml_input_name(index)), config)


def _consumed(named: Any, config: DatasetConfig) -> Any:
    target = str(config.target_folder) if config.target_folder is not None else None
    if config.use_mounting:
        return named.as_mount(path_on_compute=target)
    return named.as_download(path_on_compute=target)


def output_destination(config: DatasetConfig) -> str:
    """Where a run's output dataset is written: `<name>/<run id>/`, so versions never mix."""
    return f"{config.name}/{RUN_ID_PLACEHOLDER}/"


def output_configuration(aml_datastore: Any, config: DatasetConfig, index: int) -> Any:
    """Output `index` as `OUTPUT_<i>`: registered as the dataset's next version on completion.

    Outputs are mounted (written straight to the datastore) by default, as in hi-ml;
    `use_mounting=False` uploads them when the job ends instead.
    """
    from azureml.data import OutputFileDatasetConfig

    source = str(config.target_folder) if config.target_folder is not None else None
    output = OutputFileDatasetConfig(
        name=azureml_output_name(index),
        destination=(aml_datastore, output_destination(config)),
        source=source,
    ).register_on_complete(config.name)
    if config.use_mounting is False:
        return output.as_upload(overwrite=False)
    return output.as_mount()
