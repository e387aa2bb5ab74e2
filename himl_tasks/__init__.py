"""himl-tasks: run machine learning work on Azure Machine Learning from Prefect.

The public names are listed in `__all__`; they are imported on first use so that
`import himl_tasks` stays fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from himl_tasks.backends.azureml_v1 import (
        AzureMLV1Backend,
        get_workspace,
    )
    from himl_tasks.backends.checkpoint_files import (
        download_checkpoints,
    )
    from himl_tasks.backends.local.backend import (
        LocalBackend,
    )
    from himl_tasks.backends.local.clusters import (
        Preemption,
    )
    from himl_tasks.backends.local.workspace_config import (
        LocalWorkspaceConfig,
    )
    from himl_tasks.datasets import (
        DatasetConfig,
        ResolvedDataset,
    )
    from himl_tasks.errors import (
        ChecksumMismatchError,
        ComputeNotFoundError,
        ConfigurationError,
        ContainerNotFoundError,
        DatasetNotFoundError,
        DatastoreNotFoundError,
        HimlError,
        InvalidInputError,
        LocalFileError,
        LocalFileNotFoundError,
        LocalIsADirectoryError,
        LocalNotADirectoryError,
        LocalPermissionError,
        RemoteFileChangedError,
        RemoteFilesNotFoundError,
        RunNotFoundError,
        SnapshotTooLargeError,
        SourceChangedError,
        StorageAccessError,
        StorageError,
        TransferFailedError,
        UnsafeBlobNameError,
        UnusableNamesError,
        WorkspaceNotFoundError,
    )
    from himl_tasks.himl.datastore_transfers import (
        download_from_datastore,
        upload_to_datastore,
    )
    from himl_tasks.job_spec import (
        JobSpec,
        Priority,
    )
    from himl_tasks.runs import (
        FailureKind,
        Metric,
        RunRef,
        RunState,
        RunStatus,
        get_most_recent_run,
    )
    from himl_tasks.runtime import (
        AzureRunInfo,
        get_run_info,
    )
    from himl_tasks.secret_reference import (
        SecretReference,
    )
    from himl_tasks.storage import (
        BlobDatastore,
        Datastore,
        LocalDatastore,
        RemoteFile,
        TransferReport,
    )
    from himl_tasks.sweeps import (
        BanditPolicy,
        Choice,
        LogUniform,
        MedianStoppingPolicy,
        SweepSpec,
        TruncationSelectionPolicy,
        Uniform,
        cross_validation,
    )

_WHERE = {
    "AzureMLV1Backend": "himl_tasks.backends.azureml_v1",
    "AzureRunInfo": "himl_tasks.runtime",
    "BanditPolicy": "himl_tasks.sweeps",
    "BlobDatastore": "himl_tasks.storage",
    "ChecksumMismatchError": "himl_tasks.errors",
    "Choice": "himl_tasks.sweeps",
    "ComputeNotFoundError": "himl_tasks.errors",
    "ConfigurationError": "himl_tasks.errors",
    "ContainerNotFoundError": "himl_tasks.errors",
    "DatasetConfig": "himl_tasks.datasets",
    "DatasetNotFoundError": "himl_tasks.errors",
    "Datastore": "himl_tasks.storage",
    "DatastoreNotFoundError": "himl_tasks.errors",
    "FailureKind": "himl_tasks.runs",
    "HimlError": "himl_tasks.errors",
    "InvalidInputError": "himl_tasks.errors",
    "JobSpec": "himl_tasks.job_spec",
    "LocalBackend": "himl_tasks.backends.local.backend",
    "LocalDatastore": "himl_tasks.storage",
    "LocalFileError": "himl_tasks.errors",
    "LocalFileNotFoundError": "himl_tasks.errors",
    "LocalIsADirectoryError": "himl_tasks.errors",
    "LocalNotADirectoryError": "himl_tasks.errors",
    "LocalPermissionError": "himl_tasks.errors",
    "LocalWorkspaceConfig": "himl_tasks.backends.local.workspace_config",
    "LogUniform": "himl_tasks.sweeps",
    "MedianStoppingPolicy": "himl_tasks.sweeps",
    "Metric": "himl_tasks.runs",
    "Preemption": "himl_tasks.backends.local.clusters",
    "Priority": "himl_tasks.job_spec",
    "RemoteFile": "himl_tasks.storage",
    "RemoteFileChangedError": "himl_tasks.errors",
    "RemoteFilesNotFoundError": "himl_tasks.errors",
    "ResolvedDataset": "himl_tasks.datasets",
    "RunNotFoundError": "himl_tasks.errors",
    "RunRef": "himl_tasks.runs",
    "RunState": "himl_tasks.runs",
    "RunStatus": "himl_tasks.runs",
    "SecretReference": "himl_tasks.secret_reference",
    "SnapshotTooLargeError": "himl_tasks.errors",
    "SourceChangedError": "himl_tasks.errors",
    "StorageAccessError": "himl_tasks.errors",
    "StorageError": "himl_tasks.errors",
    "SweepSpec": "himl_tasks.sweeps",
    "TransferFailedError": "himl_tasks.errors",
    "TransferReport": "himl_tasks.storage",
    "TruncationSelectionPolicy": "himl_tasks.sweeps",
    "Uniform": "himl_tasks.sweeps",
    "UnsafeBlobNameError": "himl_tasks.errors",
    "UnusableNamesError": "himl_tasks.errors",
    "WorkspaceNotFoundError": "himl_tasks.errors",
    "cross_validation": "himl_tasks.sweeps",
    "download_checkpoints": "himl_tasks.backends.checkpoint_files",
    "download_from_datastore": "himl_tasks.himl.datastore_transfers",
    "get_most_recent_run": "himl_tasks.runs",
    "get_run_info": "himl_tasks.runtime",
    "get_workspace": "himl_tasks.backends.azureml_v1",
    "upload_to_datastore": "himl_tasks.himl.datastore_transfers",
}

__all__ = [
    "AzureMLV1Backend",
    "AzureRunInfo",
    "BanditPolicy",
    "BlobDatastore",
    "ChecksumMismatchError",
    "Choice",
    "ComputeNotFoundError",
    "ConfigurationError",
    "ContainerNotFoundError",
    "DatasetConfig",
    "DatasetNotFoundError",
    "Datastore",
    "DatastoreNotFoundError",
    "FailureKind",
    "HimlError",
    "InvalidInputError",
    "JobSpec",
    "LocalBackend",
    "LocalDatastore",
    "LocalFileError",
    "LocalFileNotFoundError",
    "LocalIsADirectoryError",
    "LocalNotADirectoryError",
    "LocalPermissionError",
    "LocalWorkspaceConfig",
    "LogUniform",
    "MedianStoppingPolicy",
    "Metric",
    "Preemption",
    "Priority",
    "RemoteFile",
    "RemoteFileChangedError",
    "RemoteFilesNotFoundError",
    "ResolvedDataset",
    "RunNotFoundError",
    "RunRef",
    "RunState",
    "RunStatus",
    "SecretReference",
    "SnapshotTooLargeError",
    "SourceChangedError",
    "StorageAccessError",
    "StorageError",
    "SweepSpec",
    "TransferFailedError",
    "TransferReport",
    "TruncationSelectionPolicy",
    "Uniform",
    "UnsafeBlobNameError",
    "UnusableNamesError",
    "WorkspaceNotFoundError",
    "cross_validation",
    "download_checkpoints",
    "download_from_datastore",
    "get_most_recent_run",
    "get_run_info",
    "get_workspace",
    "upload_to_datastore",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'himl_tasks' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return __all__
