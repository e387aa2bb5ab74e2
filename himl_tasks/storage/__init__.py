"""Datastores and the transfer engine: moving files between local folders and datastores.

Usable without Prefect and without AzureML: `LocalDatastore` is a folder, `BlobDatastore` an
Azure Blob container. Both are `Datastore`s: one engine built on each one's `TransferSession`.
"""

from himl_tasks.storage.base import Datastore, TransferSession
from himl_tasks.storage.blob import BlobDatastore
from himl_tasks.storage.local import LocalDatastore
from himl_tasks.storage.models import RemoteFile, TransferReport
from himl_tasks.storage.retry import RetryPolicy

__all__ = [
    "BlobDatastore",
    "Datastore",
    "LocalDatastore",
    "RemoteFile",
    "RetryPolicy",
    "TransferReport",
    "TransferSession",
]
