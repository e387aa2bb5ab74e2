"""hi-ml's user contract: its functions, names and semantics, on any backend."""

import importlib
from typing import TYPE_CHECKING, Any

from himl_tasks.datasets import DatasetConfig
from himl_tasks.himl.datastore_transfers import download_from_datastore, upload_to_datastore
from himl_tasks.himl.run_context import RUN_CONTEXT
from himl_tasks.himl.run_helpers import (
    download_checkpoints_from_run_id,
    download_files_from_run_id,
    fetch_run,
    get_most_recent_run,
)
from himl_tasks.himl.run_objects import run_object
from himl_tasks.himl.submission import submit_to_azure_if_needed
from himl_tasks.himl.workspace_resolution import resolve_backend
from himl_tasks.job_spec import LOCAL_FLAG
from himl_tasks.runs import RUN_RECOVERY_FILE, split_recovery_id
from himl_tasks.runtime import (
    AzureRunInfo,
    is_running_in_azure_ml,
    set_environment_variables_for_multi_node,
    torch_barrier,
)

if TYPE_CHECKING:
    from himl_tasks.backends.azureml_v1.himl_functions import (
        create_run_configuration,
        create_script_run,
        submit_run,
    )
    from himl_tasks.backends.azureml_v1.workspace import get_workspace
    from himl_tasks.himl.lightning_logging import AzureMLLogger, log_learning_rate, log_on_epoch

# Loaded when first used: PyTorch Lightning takes seconds to import, and the AzureML backend's
# modules bring the blob client (aiohttp), which a plain run of a hi-ml script does not need.
_LAZY_NAMES = {
    "AzureMLLogger": "himl_tasks.himl.lightning_logging",
    "log_learning_rate": "himl_tasks.himl.lightning_logging",
    "log_on_epoch": "himl_tasks.himl.lightning_logging",
    "create_run_configuration": "himl_tasks.backends.azureml_v1.himl_functions",
    "create_script_run": "himl_tasks.backends.azureml_v1.himl_functions",
    "submit_run": "himl_tasks.backends.azureml_v1.himl_functions",
    "get_workspace": "himl_tasks.backends.azureml_v1.workspace",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY_NAMES:
        return getattr(importlib.import_module(_LAZY_NAMES[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "LOCAL_FLAG",
    "RUN_CONTEXT",
    "RUN_RECOVERY_FILE",
    "AzureMLLogger",
    "AzureRunInfo",
    "DatasetConfig",
    "create_run_configuration",
    "create_script_run",
    "download_checkpoints_from_run_id",
    "download_files_from_run_id",
    "download_from_datastore",
    "fetch_run",
    "get_most_recent_run",
    "get_workspace",
    "is_running_in_azure_ml",
    "log_learning_rate",
    "log_on_epoch",
    "resolve_backend",
    "run_object",
    "set_environment_variables_for_multi_node",
    "split_recovery_id",
    "submit_run",
    "submit_to_azure_if_needed",
    "torch_barrier",
    "upload_to_datastore",
]
