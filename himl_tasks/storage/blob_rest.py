"""The few Blob service REST calls the transfer engine needs, sent with aiohttp.

The azure-storage-blob client spends several milliseconds of CPU on each request; with small files
that, not the network, limits throughput. These calls do only what the engine needs: Put Blob,
Put Block, Put Block List, Get Blob (whole or a range), Get Blob Properties, Delete Blob, and
List Blobs. Every call retries transient failures and translates errors into `himl_tasks.errors`
with messages that name the datastore and never a secret.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import xml.etree.ElementTree as ElementTree
from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import quote

import aiohttp
from multidict import CIMultiDictProxy
from yarl import URL

from himl_tasks.errors import (
    ContainerNotFoundError,
    HimlError,
    StorageAccessError,
    TransferFailedError,
)
from himl_tasks.storage.blob_auth import BlobAuth, redact
from himl_tasks.storage.models import RemoteFile
from himl_tasks.storage.partials import DestinationTakenError
from himl_tasks.storage.retry import TRANSIENT_STATUSES, RequestRetryPolicy, RequestTimeouts

API_VERSION = "2023-11-03"
LIST_PAGE_SIZE = 5000
LIST_ENTRY_BYTES = 4096
"""An upper bound of one listed blob's share of a listing page (a name of 1,024 characters of
up to 3 bytes each, escaped, and its properties): a page's deadline is set for this many bytes
per entry."""
STREAM_ABOVE_BYTES = 1024 * 1024
SLICE_BYTES = 256 * 1024

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Response:
    """What the engine keeps of an HTTP response."""

    status: int
    headers: CIMultiDictProxy[str]
    body: bytes

    @property
    def etag(self) -> str | None:
        """The version of the blob this response is about, without quotes."""
        return _unquoted(self.headers.get("ETag"))


def _unquoted(etag: str | None) -> str | None:
    """A blob's version as the engine carries it: its ETag without quotes (None if absent)."""
    return etag.strip('"') if etag else None


class _TransientError(Exception):
    """A failure worth retrying; `reason` is safe to show."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ContainerRestClient:
    """REST calls on one container, over a shared aiohttp session.

    Args:
        http: The aiohttp session (its connector bounds connections).
        container_url: `https://account.blob.core.windows.net/container`, without a query.
        auth: How requests are authorised.
        datastore: The datastore's name, for errors.
        retry: The retry policy for transient failures.
        timeouts: Deadlines of each request (a request that times out is retried).
    """

    def __init__(
        self,
        http: aiohttp.ClientSession,
        container_url: str,
        auth: BlobAuth,
        datastore: str,
        retry: RequestRetryPolicy,
        timeouts: RequestTimeouts | None = None,
    ) -> None:
        self._http = http
        self._container_url = container_url.rstrip("/")
        self._auth = auth
        self._datastore = datastore
        self._retry = retry
        self._timeouts = timeouts if timeouts is not None else RequestTimeouts()
        self._container = self._container_url.rsplit("/", 1)[-1]

    async def list_blobs(self, prefix: str) -> list[RemoteFile]:
        """Lists blobs whose names start with `prefix`, page by page."""
        found: list[RemoteFile] = []
        marker = ""
        while True:
            params = {"restype": "container", "comp": "list", "maxresults": str(LIST_PAGE_SIZE)}
            if prefix:
                params["prefix"] = prefix
            if marker:
                params["marker"] = marker
            response = await self._request(
                "GET",
                None,
                params=params,
                expected=(200,),
                answer_bytes=LIST_PAGE_SIZE * LIST_ENTRY_BYTES,
            )
            try:
                root = ElementTree.fromstring(response.body)
            except ElementTree.ParseError as error:
                raise TransferFailedError(
                    self._datastore,
                    f"listing container '{self._container}' returned malformed XML ({error}); "
                    "try again",
                ) from None
            for blob in root.iterfind("Blobs/Blob"):
                properties = blob.find("Properties")
                size = properties.findtext("Content-Length") if properties is not None else None
                md5 = properties.findtext("Content-MD5") if properties is not None else None
                etag = properties.findtext("Etag") if properties is not None else None
                found.append(
                    RemoteFile(
                        name=blob.findtext("Name") or "",
                        size=int(size or 0),
                        md5=base64.b64decode(md5) if md5 else None,
                        version=_unquoted(etag),
                    )
                )
            marker = root.findtext("NextMarker") or ""
            if not marker:
                return found

    async def put_blob(self, name: str, data: bytes, md5: bytes, *, replace: bool = True) -> None:
        """Stores `data` as a block blob in one request; the service checks and keeps the MD5.

        Raises:
            DestinationTakenError: If not `replace` and another blob is stored under `name`.
        """
        headers = {
            "x-ms-blob-type": "BlockBlob",
            "Content-MD5": base64.b64encode(md5).decode("ascii"),
            "Content-Type": "application/octet-stream",
        }
        await self._conditional_put(name, md5, replace, headers=headers, data=data)

    async def put_block(self, name: str, block_id: str, data: bytes, md5: bytes) -> None:
        """Stages one block of a blob (not visible until `put_block_list`)."""
        headers = {"Content-MD5": base64.b64encode(md5).decode("ascii")}
        params = {"comp": "block", "blockid": block_id}
        await self._request("PUT", name, params=params, headers=headers, data=data, expected=(201,))

    async def put_block_list(
        self, name: str, block_ids: list[str], content_md5: bytes, *, replace: bool = True
    ) -> None:
        """Commits staged blocks as the blob's content, recording the whole file's MD5.

        Raises:
            DestinationTakenError: If not `replace` and another blob is stored under `name`.
        """
        body = "".join(f"<Latest>{block_id}</Latest>" for block_id in block_ids)
        xml = f'<?xml version="1.0" encoding="utf-8"?><BlockList>{body}</BlockList>'
        headers = {
            "x-ms-blob-content-md5": base64.b64encode(content_md5).decode("ascii"),
            "x-ms-blob-content-type": "application/octet-stream",
            "Content-Type": "application/xml",
        }
        params = {"comp": "blocklist"}
        await self._conditional_put(
            name, content_md5, replace, params=params, headers=headers, data=xml.encode()
        )

    async def _conditional_put(
        self,
        name: str,
        md5: bytes,
        replace: bool,
        *,
        headers: dict[str, str],
        data: bytes,
        params: dict[str, str] | None = None,
    ) -> None:
        if replace:
            await self._request(
                "PUT", name, params=params, headers=headers, data=data, expected=(201,)
            )
            return
        # Written only if no blob has the name: one stored by another writer since the plan is
        # kept. A 409 may also answer a retry of our own write whose first answer was lost:
        # then the stored blob has our MD5.
        headers = {**headers, "If-None-Match": "*"}
        response = await self._request(
            "PUT", name, params=params, headers=headers, data=data, expected=(201, 409, 412)
        )
        if response.status == 201:
            return
        # The service answers 409 BlobAlreadyExists (412 ConditionNotMet is accepted too).
        code = _error_code(response.headers, response.body)
        if code not in ("BlobAlreadyExists", "ConditionNotMet"):
            raise self._permanent_error(
                "PUT", name, response.status, response.headers, response.body
            )
        stored = await self._request("HEAD", name, expected=(200, 404))
        if stored.headers.get("Content-MD5") != base64.b64encode(md5).decode("ascii"):
            raise DestinationTakenError(name)

    async def get_blob(
        self,
        name: str,
        start: int | None = None,
        end: int | None = None,
        *,
        if_match: str | None = None,
        size: int = 0,
    ) -> Response:
        """Reads a blob, or the inclusive byte range start..end of it.

        Args:
            name: The blob.
            start: First byte of the range (None: the whole blob).
            end: Last byte of the range, inclusive.
            if_match: Read only this version (an ETag, with or without quotes); another
                version answers 412 Precondition Failed, returned as it is.
            size: The whole blob's size as listed, when reading all of it: it sets the
                deadline of the answer (a range's own length sets it for a range).
        """
        headers = {"x-ms-range": f"bytes={start}-{end}"} if start is not None else {}
        if if_match is not None:
            headers["If-Match"] = f'"{if_match.strip(chr(34))}"'
        expected_bytes = end - start + 1 if start is not None and end is not None else size
        return await self._request(
            "GET", name, headers=headers, expected=(200, 206, 412), answer_bytes=expected_bytes
        )

    async def exists(self, name: str) -> bool:
        """Tells whether a blob of exactly this name exists."""
        response = await self._request("HEAD", name, expected=(200, 404))
        return response.status == 200

    async def delete_blob(self, name: str) -> None:
        """Deletes a blob and its snapshots; a missing blob is not an error."""
        headers = {"x-ms-delete-snapshots": "include"}
        await self._request("DELETE", name, headers=headers, expected=(202, 404))

    async def _request(
        self,
        method: str,
        blob_name: str | None,
        *,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        data: bytes | None = None,
        expected: tuple[int, ...],
        answer_bytes: int = 0,
    ) -> Response:
        target = self._target(blob_name)
        for attempt in range(1, self._retry.attempts + 1):
            try:
                return await self._send(
                    method, blob_name, params, headers, data, expected, answer_bytes
                )
            except _TransientError as transient:
                if attempt == self._retry.attempts:
                    raise TransferFailedError(
                        self._datastore,
                        f"{method} {target} failed {attempt} times; last error: "
                        f"{transient.reason}. The service or network may be unavailable; "
                        "try again later.",
                    ) from None
                delay = self._retry.delay(attempt)
                logger.debug("retrying %s %s in %.2fs: %s", method, target, delay, transient.reason)
                await asyncio.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def _target(self, blob_name: str | None) -> str:
        return f"'{blob_name}'" if blob_name is not None else f"container '{self._container}'"

    async def _send(
        self,
        method: str,
        blob_name: str | None,
        params: dict[str, str] | None,
        headers: dict[str, str] | None,
        data: bytes | None,
        expected: tuple[int, ...],
        answer_bytes: int = 0,
    ) -> Response:
        path = (
            self._container_url
            if blob_name is None
            else f"{self._container_url}/{quote(blob_name)}"
        )
        query = "&".join(f"{key}={quote(value, safe='')}" for key, value in (params or {}).items())
        url = URL(f"{path}?{query}" if query else path, encoded=True)
        request_headers = {"x-ms-version": API_VERSION, **(headers or {})}
        body: bytes | AsyncIterator[memoryview] | None = data
        if data is not None:
            # Stated, not left to aiohttp, because a Shared Key signature covers it.
            request_headers["Content-Length"] = str(len(data))
            if len(data) > STREAM_ABOVE_BYTES:
                # Big bodies go out as slices of the same buffer: no copy, and the loop stays free.
                body = _slices(data)
        try:
            url = await self._auth.authorize(method, url, request_headers)
        except HimlError:
            raise
        except Exception as error:
            # An azure-identity credential that cannot get a token (no login, no managed
            # identity here): a matter of configuration, which asking again does not fix.
            raise StorageAccessError(
                self._datastore,
                f"the credential could not authorise a request to container "
                f"'{self._container}': {redact(f'{type(error).__name__}: {error}')}. Check the "
                "credential (e.g. run `az login`, or configure the managed identity); this was "
                "not retried.",
            ) from None
        # A body to send, or an answer of known length to receive, must move at a minimum rate:
        # a peer that trickles bytes, each within the read timeout, would hold it forever.
        timeout = aiohttp.ClientTimeout(
            total=self._timeouts.total(len(data) if data is not None else answer_bytes),
            sock_connect=self._timeouts.connect,
            sock_read=self._timeouts.read,
        )
        try:
            async with self._http.request(
                method,
                url,
                headers=request_headers,
                data=body,
                timeout=timeout,
            ) as response:
                body = await response.read()
                status = response.status
                response_headers = response.headers
        except aiohttp.ClientConnectorCertificateError as error:
            raise StorageAccessError(
                self._datastore,
                f"the TLS certificate of {error.host}:{error.port} is not trusted "
                f"({error.certificate_error}). Pass an ssl_context that trusts its "
                "certificate authority, or fix the endpoint's certificate.",
            ) from None
        except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, TimeoutError) as error:
            raise _TransientError(
                redact(f"{type(error).__name__}: {error}") or type(error).__name__
            ) from None
        except (aiohttp.ClientError, ValueError) as error:
            # Made on this side (an invalid URL, a header aiohttp refuses): asking again
            # cannot help, so it is not retried.
            raise TransferFailedError(
                self._datastore,
                f"{method} {self._target(blob_name)} could not be sent: "
                f"{redact(f'{type(error).__name__}: {error}')}. Check the datastore's account "
                "URL and the names given; this was not retried.",
            ) from None
        if status in expected:
            return Response(status, response_headers, body)
        if status in TRANSIENT_STATUSES:
            raise _TransientError(f"HTTP {status} {_error_code(response_headers, body)}")
        raise self._permanent_error(method, blob_name, status, response_headers, body)

    def _permanent_error(
        self,
        method: str,
        blob_name: str | None,
        status: int,
        headers: CIMultiDictProxy[str],
        body: bytes,
    ) -> Exception:
        code = _error_code(headers, body)
        account = self._container_url.split("//", 1)[-1].split("/")[0]
        where = f"container '{self._container}' at {account}"
        if status in (401, 403):
            return StorageAccessError(
                self._datastore,
                f"access to {where} was refused (HTTP {status} {code}): the credential is wrong, "
                "expired, or lacks the permission for this operation; check the datastore's "
                "key, SAS token or role assignment.",
            )
        if status == 404 and code == "ContainerNotFound":
            return ContainerNotFoundError(
                self._datastore,
                f"{where} does not exist; create it or fix the container name.",
            )
        target = f"blob '{blob_name}'" if blob_name is not None else where
        message = _error_message(body)
        return TransferFailedError(
            self._datastore,
            f"{method} {target} failed: HTTP {status} {code}{': ' + message if message else ''}",
        )


async def _slices(data: bytes) -> AsyncIterator[memoryview]:
    view = memoryview(data)
    for start in range(0, len(view), SLICE_BYTES):
        yield view[start : start + SLICE_BYTES]


def _error_code(headers: CIMultiDictProxy[str], body: bytes) -> str:
    code = headers.get("x-ms-error-code")
    if code:
        return code
    try:
        return ElementTree.fromstring(body).findtext("Code") or ""
    except ElementTree.ParseError:
        return ""


def _error_message(body: bytes) -> str:
    try:
        message = ElementTree.fromstring(body).findtext("Message") or ""
    except ElementTree.ParseError:
        return ""
    return redact(message.splitlines()[0]) if message else ""
