"""A datastore that is an Azure Blob Storage container."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import math
import os
import re
import secrets
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
from azure.core.credentials import TokenCredential
from yarl import URL

from himl_tasks.errors import ChecksumMismatchError, InvalidInputError, TransferFailedError
from himl_tasks.storage.aio import to_thread_to_end
from himl_tasks.storage.base import Datastore
from himl_tasks.storage.blob_auth import AccountKeyAuth, BlobAuth, SasAuth, TokenAuth, redact
from himl_tasks.storage.blob_rest import ContainerRestClient, Response
from himl_tasks.storage.hashing import bytes_md5, new_md5
from himl_tasks.storage.models import RemoteFile
from himl_tasks.storage.options import whole_number
from himl_tasks.storage.pinning import ChangedWhileReadError, PinnedReader
from himl_tasks.storage.progress import TransferProgress
from himl_tasks.storage.retry import RequestRetryPolicy, RequestTimeouts
from himl_tasks.storage.session import SentFile, TransferSession

MIB = 1024 * 1024
MAX_BLOCK_SIZE = 4000 * MIB
"""Azure's largest block (and, below it, the largest blob sent in one request)."""
MAX_BLOCKS = 50_000
"""Azure's limit on the blocks of one blob: a file that would need more is sent in bigger
blocks (else the service refuses the block list once every block was sent)."""


class BlobDatastore(Datastore):
    """An Azure Blob Storage container used as a datastore.

    Build one with a class method for the credential at hand: `from_connection_string`,
    `with_account_key`, `with_sas_token` or `with_credential` (azure-identity).

    Files up to `block_size` go in one request; bigger ones in blocks of `block_size` (bigger
    for a file that would need more than Azure's 50,000 blocks), several at once, with the
    whole file's MD5 recorded when the blocks are committed. Without `overwrite`, writes are
    conditional (`If-None-Match: *`): a blob another writer stored meanwhile is kept. Every
    blob this datastore writes carries its Content-MD5.

    Args:
        account_url: e.g. `https://myaccount.blob.core.windows.net`.
        container: The container's name.
        auth: How requests are authorised (see the class methods).
        name: The datastore's name in reports and errors (default: the container's name).
        concurrency: Files in flight at once.
        block_size: Bytes per block for big files, and the largest file sent in one request.
        max_buffered_blocks: Blocks held in memory at once across all files; with
            `block_size` this bounds memory use.
        retry: Retry policy for transient failures.
        ssl_context: TLS settings for https endpoints, e.g. to trust a private certificate
            authority; by default the system's trusted certificates are used.
        timeouts: Deadlines of each request (connecting, waiting for an answer, sending a
            body); a request that times out is retried.

    Raises:
        InvalidInputError: If the account URL is not an http(s) URL, the container is empty,
            or a numeric option is out of range (concurrency, block_size, max_buffered_blocks).
    """

    def __init__(
        self,
        account_url: str,
        container: str,
        *,
        auth: BlobAuth,
        name: str | None = None,
        concurrency: int = 64,
        block_size: int = 8 * MIB,
        max_buffered_blocks: int = 16,
        retry: RequestRetryPolicy | None = None,
        ssl_context: ssl.SSLContext | None = None,
        timeouts: RequestTimeouts | None = None,
    ) -> None:
        self.account_url = _checked_account_url(account_url)
        self.container = _checked_container(container)
        if name is not None and not isinstance(name, str):
            raise InvalidInputError(f"a datastore's name must be a str, not {type(name).__name__}")
        for option, value, kind in (
            ("auth", auth, (AccountKeyAuth, SasAuth, TokenAuth)),
            ("retry", retry, (RequestRetryPolicy, type(None))),
            ("timeouts", timeouts, (RequestTimeouts, type(None))),
            ("ssl_context", ssl_context, (ssl.SSLContext, type(None))),
        ):
            # Checked here, not at the first request: a wrong one would fail there as a raw
            # AttributeError or TypeError, after the plan.
            if not isinstance(value, kind) and not (option == "auth" and _is_auth(value)):
                raise InvalidInputError(
                    f"{option} must be a {' or '.join(k.__name__ for k in kind)}, not "
                    f"{type(value).__name__}"
                )
        self.name = name if name is not None else container
        self.concurrency = whole_number("concurrency", concurrency)
        self.block_size = whole_number("block_size", block_size, maximum=MAX_BLOCK_SIZE)
        self.max_buffered_blocks = whole_number("max_buffered_blocks", max_buffered_blocks)
        self.retry = retry if retry is not None else RequestRetryPolicy()
        self.timeouts = timeouts if timeouts is not None else RequestTimeouts()
        self.ssl_context = ssl_context
        self._auth = auth

    def __repr__(self) -> str:
        return (
            f"BlobDatastore(name={self.name!r}, account_url={self.account_url!r}, "
            f"container={self.container!r}, auth={self._auth!r})"
        )

    @classmethod
    def from_connection_string(
        cls, connection_string: str, container: str, **options: object
    ) -> BlobDatastore:
        """Builds a datastore from a storage account connection string (key or SAS).

        Raises:
            InvalidInputError: If the string has neither an account key nor a SAS, or no
                endpoint can be made from it. The message never repeats the string.
        """
        fields = _parse_connection_string(connection_string)
        account_name = fields.get("accountname", "")
        account_url = fields.get("blobendpoint") or (
            f"{fields.get('defaultendpointsprotocol', 'https')}://{account_name}.blob."
            f"{fields.get('endpointsuffix', 'core.windows.net')}"
            if account_name
            else ""
        )
        if not account_url:
            raise InvalidInputError(
                "the connection string has neither BlobEndpoint nor AccountName"
            )
        auth: BlobAuth
        if "accountkey" in fields and account_name:
            auth = AccountKeyAuth(account_name, fields["accountkey"])
        elif "sharedaccesssignature" in fields:
            auth = SasAuth(fields["sharedaccesssignature"])
        else:
            raise InvalidInputError(
                "the connection string has neither AccountName with AccountKey nor "
                "SharedAccessSignature"
            )
        return cls(account_url, container, auth=auth, **options)  # type: ignore[arg-type]

    @classmethod
    def with_account_key(
        cls,
        account_url: str,
        container: str,
        account_name: str,
        account_key: str,
        **options: object,
    ) -> BlobDatastore:
        """Builds a datastore authorised by a storage account key."""
        auth = AccountKeyAuth(account_name, account_key)
        return cls(account_url, container, auth=auth, **options)  # type: ignore[arg-type]

    @classmethod
    def with_sas_token(
        cls, account_url: str, container: str, sas_token: str, **options: object
    ) -> BlobDatastore:
        """Builds a datastore authorised by a SAS token (container or account scope)."""
        return cls(account_url, container, auth=SasAuth(sas_token), **options)  # type: ignore[arg-type]

    @classmethod
    def with_credential(
        cls, account_url: str, container: str, credential: TokenCredential, **options: object
    ) -> BlobDatastore:
        """Builds a datastore authorised by an azure-identity credential (Azure AD / Entra)."""
        return cls(account_url, container, auth=TokenAuth(credential), **options)  # type: ignore[arg-type]

    @asynccontextmanager
    async def _session(self) -> AsyncIterator[TransferSession]:
        connector = aiohttp.TCPConnector(
            limit=self.concurrency,
            ttl_dns_cache=300,
            ssl=self.ssl_context if self.ssl_context is not None else True,
        )
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=self.timeouts.connect, sock_read=self.timeouts.read
        )
        async with aiohttp.ClientSession(
            connector=connector,
            timeout=timeout,
            # Bytes arrive exactly as stored (their MD5 is checked), so no compression is asked
            # for; fewer headers are also less to parse per request for the service.
            auto_decompress=False,
            skip_auto_headers=("Content-Type", "Accept", "Accept-Encoding", "User-Agent"),
            headers={"User-Agent": "himl-tasks"},
        ) as http:
            rest = ContainerRestClient(
                http,
                f"{self.account_url}/{self.container}",
                self._auth,
                self.name,
                self.retry,
                self.timeouts,
            )
            yield _BlobSession(self, rest)


class _BlobSession(TransferSession):
    def __init__(self, store: BlobDatastore, rest: ContainerRestClient) -> None:
        self._store = store
        self._rest = rest
        self._block_size = store.block_size
        self._block_slots = asyncio.Semaphore(store.max_buffered_blocks)
        self._blocks_per_file = max(1, min(8, store.max_buffered_blocks))

    async def list_files(self, prefix: str) -> list[RemoteFile]:
        return await self._rest.list_blobs(prefix)

    async def exists(self, name: str) -> bool:
        return await self._rest.exists(name)

    async def delete(self, name: str) -> None:
        await self._rest.delete_blob(name)

    # ---- upload ---------------------------------------------------------------------------

    async def put(
        self, source: Path, name: str, progress: TransferProgress, *, replace: bool = True
    ) -> SentFile:
        reader = PinnedReader(source)
        try:
            if reader.size > self._block_size:
                md5 = await self._put_blocks(reader, name, progress, replace)
            else:
                data = (
                    _read_whole(reader)
                    if reader.size < MIB
                    else await to_thread_to_end(_read_whole, reader)
                )
                md5 = bytes_md5(data)
                await self._rest.put_blob(name, data, md5, replace=replace)
                progress.advance(len(data))
        finally:
            reader.close()
        return SentFile(reader.status, md5)

    async def _put_blocks(
        self, reader: PinnedReader, name: str, progress: TransferProgress, replace: bool
    ) -> bytes:
        # Blocks are read in order (so the file's MD5 is computed in one pass) and sent
        # several at once; a block's buffer is released when its request completes. The block
        # list is committed only once the whole file was read as one state of it.
        token = secrets.token_hex(8)
        block_size = max(self._block_size, math.ceil(reader.size / MAX_BLOCKS))
        count = math.ceil(reader.size / block_size)
        block_ids = [base64.b64encode(f"{token}-{i:08d}".encode()).decode() for i in range(count)]
        file_digest = new_md5()
        sent: list[asyncio.Task[None]] = []
        per_file = asyncio.Semaphore(self._blocks_per_file)

        async def send(block_id: str, data: bytes) -> None:
            try:
                await self._rest.put_block(name, block_id, data, bytes_md5(data))
                progress.advance(len(data))
            finally:
                per_file.release()
                self._block_slots.release()

        try:
            for block_id in block_ids:
                await per_file.acquire()
                await self._block_slots.acquire()
                try:
                    data = await to_thread_to_end(_read_and_hash, reader, block_size, file_digest)
                except BaseException:
                    per_file.release()
                    self._block_slots.release()
                    raise
                sent.append(asyncio.create_task(send(block_id, data)))
                if any(t.done() and t.exception() for t in sent):
                    break
            await asyncio.gather(*sent)
            await to_thread_to_end(reader.finish)
        except ChangedWhileReadError:
            # The blocks on their way are let finish (they are never committed): requests cut
            # off halfway would only cost connections, and the file is sent again at once.
            await asyncio.gather(*sent, return_exceptions=True)
            raise
        finally:
            for task in sent:
                task.cancel()
            await asyncio.gather(*sent, return_exceptions=True)
        await self._rest.put_block_list(name, block_ids, file_digest.digest(), replace=replace)
        return file_digest.digest()

    # ---- download -------------------------------------------------------------------------

    async def get(
        self, remote: RemoteFile, destination: Path, validate: bool, progress: TransferProgress
    ) -> bool:
        if remote.size <= self._block_size:
            response = await self._rest.get_blob(
                remote.name, if_match=remote.version, size=remote.size
            )
            _check_version(response, remote.version)
            data = response.body
            if len(data) != remote.size:
                # Only without a listed version: the blob read is not the one listed.
                raise ChangedWhileReadError(f"its size changed from {remote.size} to {len(data)}")
            if validate and remote.md5 is not None:
                self._check(remote, bytes_md5(data))
            if len(data) < MIB:
                destination.write_bytes(data)
            else:
                await to_thread_to_end(destination.write_bytes, data)
            progress.advance(len(data))
        else:
            await self._get_ranges(remote, destination, validate, progress)
        return validate and remote.md5 is not None

    async def _get_ranges(
        self, remote: RemoteFile, destination: Path, validate: bool, progress: TransferProgress
    ) -> None:
        # Ranges are fetched several at once and written where they belong; the MD5 is fed in
        # order, so at most `window` ranges are held in memory at a time. Every range is read
        # from one version of the blob (If-Match its ETag): ranges of two versions never meet.
        size, block = remote.size, self._block_size
        count = math.ceil(size / block)
        window = self._blocks_per_file
        digest = new_md5()
        pinned = remote.version
        descriptor = os.open(destination, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)

        async def fetch(index: int) -> bytes:
            nonlocal pinned
            async with self._block_slots:
                start = index * block
                end = min(size, start + block) - 1
                response = await self._rest.get_blob(remote.name, start, end, if_match=pinned)
                pinned = _check_version(response, pinned)
                if _total_size(response) != size:
                    # Only without a listed version: the blob read is not the one listed.
                    raise ChangedWhileReadError(
                        f"its size changed from {size} to {_total_size(response)}"
                    )
                if len(response.body) != end - start + 1:
                    raise TransferFailedError(
                        self._store.name,
                        f"GET '{remote.name}' bytes {start}-{end} returned "
                        f"{len(response.body)} bytes; the service or a proxy ignored the "
                        "range. Try again; if this repeats, check the proxy.",
                    )
                await to_thread_to_end(os.pwrite, descriptor, response.body, start)
            progress.advance(len(response.body))
            return response.body

        tasks: dict[int, asyncio.Task[bytes]] = {}
        try:
            launched = 0
            if pinned is None:
                # No version was listed: the first range's answer names the one to pin.
                tasks[0] = asyncio.create_task(fetch(0))
                await tasks[0]
                launched = 1
            for index in range(count):
                while launched < count and launched < index + window:
                    tasks[launched] = asyncio.create_task(fetch(launched))
                    launched += 1
                data = await tasks.pop(index)
                if validate:
                    await asyncio.to_thread(digest.update, data)
        finally:
            for task in tasks.values():
                task.cancel()
            await asyncio.gather(*tasks.values(), return_exceptions=True)
            os.close(descriptor)
        if validate and remote.md5 is not None:
            self._check(remote, digest.digest())

    def _check(self, remote: RemoteFile, received: bytes) -> None:
        if remote.md5 is not None and received != remote.md5:
            raise ChecksumMismatchError(
                self._store.name, remote.name, remote.md5.hex(), received.hex()
            )


def _check_version(response: Response, pinned: str | None) -> str | None:
    """Returns the version a response is of, raising ChangedWhileReadError if it is not `pinned`."""
    if response.status == 412 or (pinned is not None and response.etag != pinned):
        # (A 200 of another version means a proxy dropped the If-Match condition.)
        now = f" by version {response.etag}" if response.status != 412 else ""
        raise ChangedWhileReadError(f"its version {pinned} was replaced{now}")
    return response.etag


def _total_size(response: Response) -> int:
    """The blob's whole size, from a range answer's `Content-Range: bytes a-b/total`."""
    content_range = response.headers.get("Content-Range", "")
    total = content_range.rpartition("/")[2]
    return int(total) if total.isdigit() else len(response.body)


def _read_whole(reader: PinnedReader) -> bytes:
    data = reader.read(reader.size)
    reader.finish()
    return data


def _read_and_hash(reader: PinnedReader, size: int, digest: hashlib._Hash) -> bytes:
    data = reader.read(size)
    digest.update(data)
    return data


def _checked_account_url(account_url: object) -> str:
    """Refuses an account URL that is not http(s)://host..., before any request is made."""
    text = account_url.rstrip("/") if isinstance(account_url, str) else ""
    try:
        parsed = URL(text)
        usable = parsed.scheme in ("http", "https") and bool(parsed.host)
    except ValueError:
        usable = False
    if not usable:
        raise InvalidInputError(
            f"the account URL {redact(str(account_url))!r} is not an http(s) URL; give "
            "e.g. https://<account>.blob.core.windows.net"
        )
    # Each would be sent on every request, mangled, and fail as a wrong credential or a bad
    # request; a query is most likely a SAS pasted with the URL, and is never repeated here.
    extra = (
        "a query string (a SAS token goes in with_sas_token)"
        if parsed.query_string
        else "a '#' fragment"
        if parsed.fragment or "#" in text
        else "a user name or password"
        if parsed.user is not None or parsed.password is not None
        else None
    )
    if extra is not None:
        raise InvalidInputError(
            f"the account URL of {parsed.host} has {extra}; give only "
            "https://<account>.blob.core.windows.net (and the container separately)"
        )
    return text


_CONTAINER_NAME = re.compile(r"[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){0,62}|\$root|\$web|\$logs")
"""Lowercase letters, digits and single inner hyphens. Azure also wants at least 3 characters;
shorter names are left to the service (a clear HTTP 400 at the first listing, before any write)."""


def _checked_container(container: object) -> str:
    """Refuses a container name with characters Azure does not allow.

    A '/' would even address another container ("a/b" is container "a", names under "b/").
    """
    if not isinstance(container, str) or not _CONTAINER_NAME.fullmatch(container):
        raise InvalidInputError(
            f"container name {redact(repr(container))} is not one Azure allows: up to 63 "
            "lowercase letters, digits and single hyphens, starting and ending with a letter "
            "or digit (or $root, $web, $logs); fix the container name"
        )
    return container


def _is_auth(value: object) -> bool:
    # Any object with an `authorize` method is a BlobAuth (the protocol).
    return callable(getattr(value, "authorize", None))


def _parse_connection_string(connection_string: str) -> dict[str, str]:
    if not isinstance(connection_string, str):
        raise InvalidInputError(
            f"a connection string must be a str, not {type(connection_string).__name__}"
        )
    fields: dict[str, str] = {}
    for part in connection_string.split(";"):
        key, separator, value = part.partition("=")
        if separator and key.strip():
            fields[key.strip().lower()] = value.strip()
    return fields
