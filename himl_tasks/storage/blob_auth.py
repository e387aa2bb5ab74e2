"""How requests to a blob container are authorised, and keeping secrets out of text.

Three kinds of credential, one per class: a SAS token (appended to each URL), an account key
(turned into a short-lived container SAS, so no request is signed one by one), and an
azure-identity token credential (a bearer header, refreshed before it expires).
"""

from __future__ import annotations

import asyncio
import datetime
import re
import time
from typing import Protocol

from azure.core.credentials import TokenCredential

STORAGE_SCOPE = "https://storage.azure.com/.default"

_QUERY_IN_URL = re.compile(r"(https?://[^\s?'\"]+)\?[^\s'\"]*")
_SECRET_FIELDS = re.compile(r"(?i)\b(sig|AccountKey|SharedAccessSignature)=[^;&\s'\"]+")


def redact(text: str) -> str:
    """Removes query strings from URLs and secret fields from any text bound for users."""
    return _SECRET_FIELDS.sub(r"\1=<redacted>", _QUERY_IN_URL.sub(r"\1?<redacted>", text))


class BlobAuth(Protocol):
    """Authorises requests: returns the query string to append and headers to add."""

    async def query(self) -> str:
        """Returns a SAS query string without '?', or ''."""
        ...

    async def headers(self) -> dict[str, str]:
        """Returns headers to add to each request."""
        ...


class SasAuth:
    """A SAS token given by the user, container- or account-scoped."""

    def __init__(self, sas_token: str) -> None:
        self._query = sas_token.lstrip("?")

    def __repr__(self) -> str:
        return "SasAuth(<redacted>)"

    async def query(self) -> str:
        """Returns the token."""
        return self._query

    async def headers(self) -> dict[str, str]:
        """Returns no headers."""
        return {}


class AccountKeyAuth:
    """An account key, used only to make container SAS tokens valid for a few hours."""

    LIFETIME = datetime.timedelta(hours=4)
    RENEW_BEFORE = datetime.timedelta(minutes=30)

    def __init__(self, account_name: str, container: str, account_key: str) -> None:
        self._account_name = account_name
        self._container = container
        self._account_key = account_key
        self._query = ""
        self._expires = datetime.datetime.min.replace(tzinfo=datetime.UTC)

    def __repr__(self) -> str:
        return f"AccountKeyAuth(account={self._account_name!r}, key=<redacted>)"

    async def query(self) -> str:
        """Returns a container SAS made from the key, renewed before it expires."""
        now = datetime.datetime.now(datetime.UTC)
        if self._expires - now <= self.RENEW_BEFORE:
            from azure.storage.blob import ContainerSasPermissions, generate_container_sas

            self._expires = now + self.LIFETIME
            self._query = generate_container_sas(
                self._account_name,
                self._container,
                account_key=self._account_key,
                permission=ContainerSasPermissions(
                    read=True, add=True, create=True, write=True, delete=True, list=True
                ),
                start=now - datetime.timedelta(minutes=5),
                expiry=self._expires,
            )
        return self._query

    async def headers(self) -> dict[str, str]:
        """Returns no headers."""
        return {}


class TokenAuth:
    """An azure-identity credential (managed identity, Azure CLI, service principal, ...)."""

    RENEW_BEFORE_SECONDS = 300

    def __init__(self, credential: TokenCredential) -> None:
        self._credential = credential
        self._token = ""
        self._expires_on = 0

    def __repr__(self) -> str:
        return f"TokenAuth({type(self._credential).__name__})"

    async def query(self) -> str:
        """Returns no query."""
        return ""

    async def headers(self) -> dict[str, str]:
        """Returns the bearer header, fetching a new token when near expiry."""
        # Unlocked on purpose: two requests racing to renew just fetch one extra token.
        if time.time() >= self._expires_on - self.RENEW_BEFORE_SECONDS:
            token = await asyncio.to_thread(self._credential.get_token, STORAGE_SCOPE)
            self._token, self._expires_on = token.token, token.expires_on
        return {"Authorization": f"Bearer {self._token}"}
