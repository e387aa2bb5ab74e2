"""Datastores and the transfer engine: moving files between local folders and datastores.

Usable without Prefect and without AzureML: `LocalDatastore` is a folder, `BlobDatastore` an
Azure Blob container. Both are `Datastore`s: one engine built on each one's `TransferSession`.
`BlobDatastore` (and aiohttp under it) is imported on first use, so that work on folders alone
does not pay for it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from himl_tasks.storage.base import Datastore
from himl_tasks.storage.local import LocalDatastore
from himl_tasks.storage.models import RemoteFile, TransferReport
from himl_tasks.storage.retry import RequestRetryPolicy, RequestTimeouts
from himl_tasks.storage.session import TransferSession

if TYPE_CHECKING:
    from himl_tasks.storage.blob import BlobDatastore

__all__ = [
    "BlobDatastore",
    "Datastore",
    "LocalDatastore",
    "RemoteFile",
    "RequestRetryPolicy",
    "RequestTimeouts",
    "TransferReport",
    "TransferSession",
]


def __getattr__(name: str) -> Any:
    if name == "BlobDatastore":
        from himl_tasks.storage.blob import BlobDatastore

        return BlobDatastore
    raise AttributeError(f"module 'himl_tasks.storage' has no attribute {name!r}")
