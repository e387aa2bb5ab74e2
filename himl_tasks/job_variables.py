"""The names through which a backend tells a job where it runs, read by the job's runtime.

Backends set them when they submit a job; `himl_tasks.runtime` reads them inside it. Both sides
import the names from here, so they cannot drift apart. Dataset folders are numbered in the order
of the job spec's `input_datasets` / `output_datasets`, as hi-ml numbers them.
"""

from __future__ import annotations

import re

IN_JOB = "HIML_IN_JOB"
"""Names the module of the backend's in-job half (`himl_tasks.backends.<name>.in_job`)."""

WORKSPACE = "HIML_WORKSPACE"
RUN_ID = "HIML_RUN_ID"
EXPERIMENT = "HIML_EXPERIMENT"
ATTEMPT = "HIML_ATTEMPT"
OUTPUT_FOLDER = "HIML_OUTPUT_FOLDER"
LOGS_FOLDER = "HIML_LOGS_FOLDER"
INPUT_DATASET_COUNT = "HIML_INPUT_DATASET_COUNT"
OUTPUT_DATASET_COUNT = "HIML_OUTPUT_DATASET_COUNT"
RESUME_FROM = "HIML_RESUME_FROM"

DEFAULT_ENVIRONMENT_VARIABLES = {
    "AZUREML_OUTPUT_UPLOAD_TIMEOUT_SEC": "3600",
    "AZUREML_RUN_KILL_SIGNAL_TIMEOUT_SEC": "900",
    "MKL_SERVICE_FORCE_INTEL": "1",
    "RSLEX_DIRECT_VOLUME_MOUNT": "true",
    "RSLEX_DIRECT_VOLUME_MOUNT_MAX_CACHE_SIZE": "1",
    "DATASET_MOUNT_CACHE_SIZE": "1",
}
"""hi-ml's variables for every AzureML run, under the user's own (health_azure/utils.py 0.2.11:
longer upload and kill timeouts, MKL's Intel threading, the newer mounting stack)."""

AZUREML_RUN_ID = "AZUREML_RUN_ID"
"""Set by AzureML in every run it starts, whoever submitted it."""

AZUREML_EXPERIMENT = "AZUREML_ARM_PROJECT_NAME"
"""Set by AzureML in every job to the job's experiment (read by azure-ai-ml inside a job)."""

MLFLOW_TRACKING_URI = "MLFLOW_TRACKING_URI"
MLFLOW_RUN_ID = "MLFLOW_RUN_ID"
"""Set by AzureML in every v2 job: where its metrics go, and its MLflow run (the job's name)."""

# The in-job halves, by module name: the runtime imports them by name (a plugin lookup), so it
# imports no backend itself. Strings, not imports, keep this module a leaf.
LOCAL_IN_JOB = "himl_tasks.backends.local.in_job"
AZUREML_V1_IN_JOB = "himl_tasks.backends.azureml_v1.in_job"
AZUREML_V2_IN_JOB = "himl_tasks.backends.azureml_v2.in_job"


_SET_BY_BACKENDS = frozenset(
    {IN_JOB, WORKSPACE, RUN_ID, EXPERIMENT, ATTEMPT, OUTPUT_FOLDER, LOGS_FOLDER,
     INPUT_DATASET_COUNT, OUTPUT_DATASET_COUNT, RESUME_FROM}
)  # fmt: skip
_DATASET_FOLDER = re.compile(r"HIML_(IN|OUT)PUT_DATASET_\d+")


def is_set_by_backends(name: str) -> bool:
    """True for a variable a backend sets in every job it runs (a job spec may not set it)."""
    return name in _SET_BY_BACKENDS or _DATASET_FOLDER.fullmatch(name) is not None


def input_dataset(index: int) -> str:
    """The variable holding the folder of input dataset `index` in a local run."""
    return f"HIML_INPUT_DATASET_{index}"


def output_dataset(index: int) -> str:
    """The variable holding the folder of output dataset `index` in a local run."""
    return f"HIML_OUTPUT_DATASET_{index}"


def azureml_input_name(index: int) -> str:
    """The name under which input dataset `index` reaches an AzureML run (hi-ml's `INPUT_<i>`)."""
    return f"INPUT_{index}"


def azureml_output_name(index: int) -> str:
    """The name under which output dataset `index` reaches an AzureML run (`OUTPUT_<i>`)."""
    return f"OUTPUT_{index}"


def azureml_v2_input_folder(index: int) -> str:
    """The variable AzureML sets in a v2 job to the folder of input `INPUT_<index>`.

    AzureML gives each input of a command job as `AZURE_ML_INPUT_<input name>` (azure-ai-ml's
    `INPUT_BINDING_PREFIX`, azure/ai/ml/entities/_job/parameterized_command.py; hi-ml 0.5 reads
    a v2 job's datasets from them: health_azure/himl.py, `_extract_v2_data_asset_from_env_vars`).
    """
    return f"AZURE_ML_INPUT_{azureml_input_name(index)}"


def azureml_v2_output_folder(index: int) -> str:
    """The variable AzureML sets in a v2 job to the folder of output `OUTPUT_<index>`."""
    return f"AZURE_ML_OUTPUT_{azureml_output_name(index)}"
