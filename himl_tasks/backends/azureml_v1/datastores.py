"""AzureML blob datastores, moved through `himl_tasks.storage`.

An AzureML datastore is a registered pointer to a blob container plus a credential. The
container and credential are read from it once and handed to `BlobDatastore`, so AzureML users
get the transfer engine's speed, checksums and safety rather than `Datastore.upload`'s.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from himl_tasks.errors import ConfigurationError
from himl_tasks.storage import BlobDatastore

SEED_FILE = Path(".azureml") / "datastore.json"


def blob_storage_for(
    aml_datastore: Any,
    *,
    account_urls: Mapping[str, str] | None = None,
    credential: Any = None,
    **options: Any,
) -> BlobDatastore:
    """The `BlobDatastore` behind an AzureML blob datastore, under the same name.

    Args:
        aml_datastore: An `AzureBlobDatastore` (registered, or built offline).
        account_urls: Blob endpoints by storage account name, for accounts not reached at
            `<protocol>://<account>.blob.<endpoint>` (private endpoints, emulators).
        credential: An azure-identity credential for identity-based datastores (those that
            hold neither key nor SAS).
        options: Further `BlobDatastore` options (concurrency, block size, retry).

    Raises:
        ConfigurationError: If the datastore is not a blob container, or holds no credential
            and none was given.
    """
    kind = getattr(aml_datastore, "datastore_type", "")
    if kind != "AzureBlob":
        raise ConfigurationError(
            f"datastore '{aml_datastore.name}' is a {kind or type(aml_datastore).__name__} "
            "datastore; himl-tasks moves data to and from Azure Blob containers only"
        )
    account, container = aml_datastore.account_name, aml_datastore.container_name
    url = (account_urls or {}).get(account) or (
        f"{aml_datastore.protocol or 'https'}://{account}.blob."
        f"{aml_datastore.endpoint or 'core.windows.net'}"
    )
    common = {"name": aml_datastore.name, **options}
    if aml_datastore.account_key:
        return BlobDatastore.with_account_key(
            url, container, account, aml_datastore.account_key, **common
        )
    if aml_datastore.sas_token:
        return BlobDatastore.with_sas_token(url, container, aml_datastore.sas_token, **common)
    if credential is not None:
        return BlobDatastore.with_credential(url, container, credential, **common)
    raise ConfigurationError(
        f"datastore '{aml_datastore.name}' holds no account key or SAS token (it is "
        "identity-based); pass an azure-identity credential to the backend "
        "(storage_credential=...)"
    )


def read_datastore_seed(path: Path = SEED_FILE) -> dict[str, str]:
    """Reads a datastore definition file (`.azureml/datastore.json`).

    It holds `name`, `container_name`, `account_name`, and `account_key` or `sas_token`,
    optionally `endpoint` and `protocol`. The `.azureml/` folder never travels in a job's
    snapshot.

    Raises:
        ConfigurationError: If the file is missing, not JSON, or lacks a field. The message
            never repeats the file's content.
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigurationError(f"datastore definition {path} does not exist") from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ConfigurationError(f"datastore definition {path} is not JSON") from None
    if not isinstance(data, dict):
        raise ConfigurationError(f"datastore definition {path} must hold a JSON object")
    missing = [f for f in ("name", "container_name", "account_name") if not data.get(f)]
    if missing:
        raise ConfigurationError(f"datastore definition {path} lacks {', '.join(missing)}")
    return {str(k): str(v) for k, v in data.items()}
