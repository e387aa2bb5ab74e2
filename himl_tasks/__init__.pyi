"""The public names of himl_tasks: this list is the only one.

`himl_tasks/__init__.py` reads it at import time (lazy_loader.attach_stub) and imports each name's
module on first use, so `import himl_tasks` stays fast and loads no SDK; type checkers read it as
the package's interface. `tests/test_package.py` pins the list.
"""

from .backends.azureml_v1 import AzureMLV1Backend as AzureMLV1Backend
from .backends.azureml_v1 import get_workspace as get_workspace
from .backends.azureml_v1.himl_functions import create_run_configuration as create_run_configuration
from .backends.azureml_v1.himl_functions import create_script_run as create_script_run
from .backends.azureml_v1.himl_functions import submit_run as submit_run
from .backends.azureml_v2 import AzureMLV2Backend as AzureMLV2Backend
from .backends.checkpoint_files import download_checkpoints as download_checkpoints
from .backends.local.backend import LocalBackend as LocalBackend
from .backends.local.clusters import Preemption as Preemption
from .backends.local.clusters import PreemptionMode as PreemptionMode
from .backends.local.workspace_config import LocalWorkspaceConfig as LocalWorkspaceConfig
from .datasets import DatasetConfig as DatasetConfig
from .datasets import ResolvedDataset as ResolvedDataset
from .errors import ChecksumMismatchError as ChecksumMismatchError
from .errors import ComputeNotFoundError as ComputeNotFoundError
from .errors import ConfigurationError as ConfigurationError
from .errors import ContainerNotFoundError as ContainerNotFoundError
from .errors import DatasetNotFoundError as DatasetNotFoundError
from .errors import DatastoreNotFoundError as DatastoreNotFoundError
from .errors import HimlError as HimlError
from .errors import InputPathNotFoundError as InputPathNotFoundError
from .errors import InvalidInputError as InvalidInputError
from .errors import JobFailedError as JobFailedError
from .errors import JobTimeoutError as JobTimeoutError
from .errors import LocalFileError as LocalFileError
from .errors import LocalFileNotFoundError as LocalFileNotFoundError
from .errors import LocalIsADirectoryError as LocalIsADirectoryError
from .errors import LocalNotADirectoryError as LocalNotADirectoryError
from .errors import LocalPermissionError as LocalPermissionError
from .errors import NotSupportedError as NotSupportedError
from .errors import PipelineNotFoundError as PipelineNotFoundError
from .errors import RemoteFileChangedError as RemoteFileChangedError
from .errors import RemoteFilesNotFoundError as RemoteFilesNotFoundError
from .errors import RunNotFoundError as RunNotFoundError
from .errors import SnapshotTooLargeError as SnapshotTooLargeError
from .errors import SourceChangedError as SourceChangedError
from .errors import StorageAccessError as StorageAccessError
from .errors import StorageError as StorageError
from .errors import TransferFailedError as TransferFailedError
from .errors import UnsafeBlobNameError as UnsafeBlobNameError
from .errors import UnusableNamesError as UnusableNamesError
from .errors import WorkspaceNotFoundError as WorkspaceNotFoundError
from .himl.datastore_transfers import download_from_datastore as download_from_datastore
from .himl.datastore_transfers import upload_to_datastore as upload_to_datastore
from .himl.lightning_logging import AzureMLLogger as AzureMLLogger
from .himl.lightning_logging import log_learning_rate as log_learning_rate
from .himl.lightning_logging import log_on_epoch as log_on_epoch
from .himl.run_helpers import download_checkpoints_from_run_id as download_checkpoints_from_run_id
from .himl.run_helpers import download_files_from_run_id as download_files_from_run_id
from .himl.run_helpers import fetch_run as fetch_run
from .himl.run_helpers import get_most_recent_run as get_most_recent_run
from .himl.submission import submit_to_azure_if_needed as submit_to_azure_if_needed
from .himl.workspace_resolution import resolve_backend as resolve_backend
from .job_spec import JobSpec as JobSpec
from .job_spec import Priority as Priority
from .pipeline_runs import PipelineSchedule as PipelineSchedule
from .pipeline_runs import PublishedPipeline as PublishedPipeline
from .pipeline_runs import StepRun as StepRun
from .pipelines import PipelineSpec as PipelineSpec
from .pipelines import PipelineStep as PipelineStep
from .run_plan import RunPlan as RunPlan
from .runs import RUN_RECOVERY_FILE as RUN_RECOVERY_FILE
from .runs import FailureKind as FailureKind
from .runs import Metric as Metric
from .runs import RunRef as RunRef
from .runs import RunState as RunState
from .runs import RunStatus as RunStatus
from .runs import split_recovery_id as split_recovery_id
from .runtime import RUN_CONTEXT as RUN_CONTEXT
from .runtime import AzureRunInfo as AzureRunInfo
from .runtime import get_run_info as get_run_info
from .runtime import is_running_in_azure_ml as is_running_in_azure_ml
from .runtime import (
    set_environment_variables_for_multi_node as set_environment_variables_for_multi_node,
)
from .runtime import torch_barrier as torch_barrier
from .secret_reference import SecretReference as SecretReference
from .storage import BlobDatastore as BlobDatastore
from .storage import Datastore as Datastore
from .storage import LocalDatastore as LocalDatastore
from .storage import RemoteFile as RemoteFile
from .storage import TransferReport as TransferReport
from .sweeps import BanditPolicy as BanditPolicy
from .sweeps import Choice as Choice
from .sweeps import LogUniform as LogUniform
from .sweeps import MedianStoppingPolicy as MedianStoppingPolicy
from .sweeps import SweepSpec as SweepSpec
from .sweeps import TruncationSelectionPolicy as TruncationSelectionPolicy
from .sweeps import Uniform as Uniform
from .sweeps import cross_validation as cross_validation
