"""AzureML v2 blob datastores, moved through `himl_tasks.storage`.

A v2 datastore entity (`AzureBlobDatastore`, read with its secrets) names a blob container
and holds its credential (`AccountKeyConfiguration`, `SasTokenConfiguration`, or none for an
identity-based one). Both are read from it once and handed to `BlobDatastore`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from himl_tasks.errors import ConfigurationError
from himl_tasks.storage import BlobDatastore

# A datastore path as data assets and outputs hold it, short or long:
# azureml://datastores/<name>/paths/<folder>/ or
# azureml://subscriptions/<s>/resourcegroups/<rg>/workspaces/<ws>/datastores/<name>/paths/<folder>/
_DATASTORE_PATH = re.compile(
    r"^azureml://(?:.*/)?datastores/(?P<datastore>[^/]+)/paths/(?P<path>.*)$"
)


def blob_datastore_of(
    entity: Any,
    *,
    account_urls: Mapping[str, str] | None = None,
    credential: Any = None,
    **options: Any,
) -> BlobDatastore:
    """The `BlobDatastore` behind a v2 blob datastore entity, under the same name.

    Args:
        entity: An `azure.ai.ml.entities.AzureBlobDatastore`, read with its secrets.
        account_urls: Blob endpoints by storage account name, for accounts not reached at
            `<protocol>://<account>.blob.<endpoint>` (private endpoints, emulators).
        credential: An azure-identity credential for identity-based datastores.
        options: Further `BlobDatastore` options (concurrency, block size, retry).

    Raises:
        ConfigurationError: If the datastore is not a blob container, or holds no credential
            and none was given.
    """
    kind = str(getattr(entity.type, "value", entity.type) or "")
    if kind != "AzureBlob":
        raise ConfigurationError(
            f"datastore '{entity.name}' is a {kind or type(entity).__name__} datastore; "
            "himl-tasks moves data to and from Azure Blob containers only"
        )
    account, container = entity.account_name, entity.container_name
    url = (account_urls or {}).get(account) or (
        f"{entity.protocol or 'https'}://{account}.blob.{entity.endpoint or 'core.windows.net'}"
    )
    common = {"name": entity.name, **options}
    secrets = entity.credentials
    account_key = getattr(secrets, "account_key", None)
    sas_token = getattr(secrets, "sas_token", None)
    if account_key:
        return BlobDatastore.with_account_key(url, container, account, account_key, **common)
    if sas_token:
        return BlobDatastore.with_sas_token(url, container, sas_token, **common)
    if credential is not None:
        return BlobDatastore.with_credential(url, container, credential, **common)
    raise ConfigurationError(
        f"datastore '{entity.name}' holds no account key or SAS token (it is identity-based, "
        "or was read without its secrets); pass an azure-identity credential to the backend "
        "(storage_credential=...)"
    )


def datastore_path(datastore: str, folder: str) -> str:
    """The `azureml://` path of a folder in a datastore, as a data asset holds it."""
    return f"azureml://datastores/{datastore}/paths/{folder.strip('/')}/"


def split_datastore_path(path: str) -> tuple[str, str] | None:
    """(datastore, folder) of an `azureml://.../datastores/<d>/paths/<folder>/` path, else None."""
    match = _DATASTORE_PATH.match(path)
    if match is None:
        return None
    return match["datastore"], match["path"].strip("/")
