"""How requests to a blob container are authorised, and keeping secrets out of text.

Three kinds of credential, one per class: a SAS token (appended to each URL), an account key
(each request signed with Shared Key, so the key never travels and no URL carries a secret), and
an azure-identity token credential (a bearer header, refreshed before it expires).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import email.utils
import hashlib
import hmac
import re
import time
from typing import Protocol

from azure.core.credentials import TokenCredential
from yarl import URL

from himl_tasks.errors import InvalidInputError

STORAGE_SCOPE = "https://storage.azure.com/.default"

_QUERY_IN_URL = re.compile(r"(https?://[^\s?'\"]+)\?[^\s'\"]*")
_CONTROL = re.compile(r"[\x00-\x20\x7f-\x9f/]")
"""Characters no account name or SAS token holds (control characters, spaces, '/')."""
_SECRET_FIELDS = re.compile(r"(?i)\b(sig|AccountKey|SharedAccessSignature)=[^;&\s'\"]+")


def redact(text: str) -> str:
    """Removes query strings from URLs and secret fields from any text bound for users."""
    return _SECRET_FIELDS.sub(r"\1=<redacted>", _QUERY_IN_URL.sub(r"\1?<redacted>", text))


class BlobAuth(Protocol):
    """Authorises requests to one container."""

    async def authorize(self, method: str, url: URL, headers: dict[str, str]) -> URL:
        """Authorises one request.

        Args:
            method: The HTTP method.
            url: The request's URL, already percent-encoded.
            headers: Every header the request will carry; authorisation headers are added here.

        Returns:
            The URL to send, with a SAS query appended if the credential is one.
        """
        ...


class SasAuth:
    """A SAS token given by the user, container- or account-scoped."""

    def __init__(self, sas_token: str) -> None:
        if not isinstance(sas_token, str) or _CONTROL.search(sas_token.strip().replace("/", "")):
            # The token itself is never repeated: it is a secret.
            what = (
                "holds spaces or control characters"
                if isinstance(sas_token, str)
                else (f"is a {type(sas_token).__name__}, not a str")
            )
            raise InvalidInputError(
                f"the SAS token {what}; give the query string of a SAS URL (sv=...&sig=...), "
                "copied again in one piece"
            )
        self._query = sas_token.strip().lstrip("?")

    def __repr__(self) -> str:
        return "SasAuth(<redacted>)"

    async def authorize(self, method: str, url: URL, headers: dict[str, str]) -> URL:
        """Appends the token to the URL's query."""
        if not self._query:
            return url
        separator = "&" if url.raw_query_string else "?"
        return URL(f"{url}{separator}{self._query}", encoded=True)


class AccountKeyAuth:
    """A storage account key: each request is signed with Shared Key.

    The signature covers the method, the standard headers, every `x-ms-` header, the path and
    the query, so a request cannot be altered in flight; `x-ms-date` limits its replay to the
    service's clock-skew window. Unlike a SAS, nothing secret ever appears in a URL.
    """

    _STANDARD_HEADERS = (
        "content-encoding",
        "content-language",
        "content-length",
        "content-md5",
        "content-type",
        "date",
        "if-modified-since",
        "if-match",
        "if-none-match",
        "if-unmodified-since",
        "range",
    )

    def __init__(self, account_name: str, account_key: str) -> None:
        if not isinstance(account_name, str) or not account_name or _CONTROL.search(account_name):
            raise InvalidInputError(
                f"the storage account name must be a non-empty str without spaces or control "
                f"characters, not {account_name!r}; give the account's name, e.g. 'myaccount'"
            )
        if not isinstance(account_key, str):
            raise InvalidInputError(
                f"the account key of storage account '{account_name}' must be a str, not "
                f"{type(account_key).__name__}"
            )
        self._account_name = account_name
        try:
            self._key = base64.b64decode(account_key, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidInputError(
                f"the account key of storage account '{account_name}' is not valid base64; "
                "copy it again from the portal (Access keys) or the connection string"
            ) from None

    def __repr__(self) -> str:
        return f"AccountKeyAuth(account={self._account_name!r}, key=<redacted>)"

    async def authorize(self, method: str, url: URL, headers: dict[str, str]) -> URL:
        """Adds `x-ms-date` and the Shared Key `Authorization` header."""
        headers["x-ms-date"] = email.utils.formatdate(usegmt=True)
        headers["Authorization"] = self.signature(method, url, headers)
        return url

    def signature(self, method: str, url: URL, headers: dict[str, str]) -> str:
        """Returns the `Authorization` value for a request (the Shared Key scheme)."""
        lowered = {name.lower(): value.strip() for name, value in headers.items()}
        if lowered.get("content-length") == "0":
            lowered["content-length"] = ""  # the rule since API version 2015-02-21
        standard = "".join(f"{lowered.get(name, '')}\n" for name in self._STANDARD_HEADERS)
        canonical_headers = "".join(
            f"{name}:{value}\n"
            for name, value in sorted(lowered.items())
            if name.startswith("x-ms-")
        )
        canonical_query = "".join(
            f"\n{name}:{value}"
            for name, value in sorted((name.lower(), value) for name, value in url.query.items())
        )
        to_sign = (
            f"{method}\n{standard}{canonical_headers}"
            f"/{self._account_name}{url.raw_path}{canonical_query}"
        )
        digest = hmac.new(self._key, to_sign.encode("utf-8"), hashlib.sha256).digest()
        return f"SharedKey {self._account_name}:{base64.b64encode(digest).decode('ascii')}"


class TokenAuth:
    """An azure-identity credential (managed identity, Azure CLI, service principal, ...)."""

    RENEW_BEFORE_SECONDS = 300

    def __init__(self, credential: TokenCredential) -> None:
        if not callable(getattr(credential, "get_token", None)):
            raise InvalidInputError(
                f"a token credential must have get_token (e.g. azure.identity's "
                f"DefaultAzureCredential()), not {type(credential).__name__}"
            )
        self._credential = credential
        self._token = ""
        self._expires_on = 0

    def __repr__(self) -> str:
        return f"TokenAuth({type(self._credential).__name__})"

    async def authorize(self, method: str, url: URL, headers: dict[str, str]) -> URL:
        """Adds the bearer header, fetching a new token when near expiry."""
        # Unlocked on purpose: two requests racing to renew just fetch one extra token.
        if time.time() >= self._expires_on - self.RENEW_BEFORE_SECONDS:
            token = await asyncio.to_thread(self._credential.get_token, STORAGE_SCOPE)
            self._token, self._expires_on = token.token, token.expires_on
        headers["Authorization"] = f"Bearer {self._token}"
        return url
