"""The credentials an AzureML blob datastore is registered with, checked alike on both SDKs."""

from __future__ import annotations

from himl_tasks.errors import ConfigurationError


def check_datastore_credentials(name: str, account_key: str, sas_token: str) -> None:
    """Refuses a datastore registration without exactly one credential.

    Raises:
        ConfigurationError: Unless exactly one of `account_key` and `sas_token` is given.
    """
    if bool(account_key) == bool(sas_token):
        raise ConfigurationError(
            f"datastore '{name}': give exactly one of account_key and sas_token"
        )
