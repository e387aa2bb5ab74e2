"""himl-tasks: run machine learning work on Azure Machine Learning from Prefect.

The public names are listed in `__all__`; they are imported on first use so that
`import himl_tasks` stays fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from himl_tasks.errors import (
        ChecksumMismatchError,
        ConfigurationError,
        ContainerNotFoundError,
        DatastoreNotFoundError,
        HimlError,
        InvalidInputError,
        RemoteFilesNotFoundError,
        StorageAccessError,
        StorageError,
        TransferFailedError,
        UnsafeBlobNameError,
    )
    from himl_tasks.storage import (
        BlobDatastore,
        Datastore,
        LocalDatastore,
        RemoteFile,
        TransferReport,
    )
    from himl_tasks.transfers import download_from_datastore, upload_to_datastore
    from himl_tasks.workspace_config import LocalWorkspaceConfig

_WHERE = {
    "BlobDatastore": "himl_tasks.storage",
    "ChecksumMismatchError": "himl_tasks.errors",
    "ConfigurationError": "himl_tasks.errors",
    "ContainerNotFoundError": "himl_tasks.errors",
    "Datastore": "himl_tasks.storage",
    "DatastoreNotFoundError": "himl_tasks.errors",
    "HimlError": "himl_tasks.errors",
    "InvalidInputError": "himl_tasks.errors",
    "LocalDatastore": "himl_tasks.storage",
    "LocalWorkspaceConfig": "himl_tasks.workspace_config",
    "RemoteFile": "himl_tasks.storage",
    "RemoteFilesNotFoundError": "himl_tasks.errors",
    "StorageAccessError": "himl_tasks.errors",
    "StorageError": "himl_tasks.errors",
    "TransferFailedError": "himl_tasks.errors",
    "TransferReport": "himl_tasks.storage",
    "UnsafeBlobNameError": "himl_tasks.errors",
    "download_from_datastore": "himl_tasks.transfers",
    "upload_to_datastore": "himl_tasks.transfers",
}

__all__ = [
    "BlobDatastore",
    "ChecksumMismatchError",
    "ConfigurationError",
    "ContainerNotFoundError",
    "Datastore",
    "DatastoreNotFoundError",
    "HimlError",
    "InvalidInputError",
    "LocalDatastore",
    "LocalWorkspaceConfig",
    "RemoteFile",
    "RemoteFilesNotFoundError",
    "StorageAccessError",
    "StorageError",
    "TransferFailedError",
    "TransferReport",
    "UnsafeBlobNameError",
    "download_from_datastore",
    "upload_to_datastore",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'himl_tasks' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return __all__
