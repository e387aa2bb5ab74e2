"""Datastores and the transfer engine built once on each datastore's primitives.

A datastore implementation provides a `TransferSession`: list, put one file, get one file, delete
one file, test one name. Everything users call (upload_folder, upload_files, download, delete,
list, exists) is built here on those primitives, so folder and blob datastores behave the same.

Every transfer plans first (what to copy, what is already identical, what already exists, and
every name that cannot be written, all refused together), then runs the plan with bounded
concurrency, and returns a `TransferReport`. Errors of the local file system are translated into
`himl_tasks.errors` at the boundary of each operation (here) and of each file (`one_file`).
The checks of a caller's arguments are in `transfer_inputs`.
"""

from __future__ import annotations

import abc
import asyncio
import builtins
import functools
import os
import stat
import time
from collections.abc import Awaitable, Callable, Collection, Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from pathlib import Path, PurePath
from typing import Concatenate, ParamSpec, TypeVar

from himl_tasks.errors import InputPathNotFoundError, InvalidInputError, RemoteFilesNotFoundError
from himl_tasks.storage.aio import run_sync as _run
from himl_tasks.storage.checksum_cache import files_md5, remember_md5s
from himl_tasks.storage.local_errors import translated_local_errors
from himl_tasks.storage.models import RemoteFile, TransferReport
from himl_tasks.storage.names import (
    MAX_BLOB_NAME_CHARS,
    blob_name_problem,
    check_name_argument,
    is_unsafe,
    join_blob_name,
    local_target,
    local_write_problems,
    normalize_prefix,
    normalize_remote_path,
)
from himl_tasks.storage.one_file import get_one_state, one_file, put_one_state
from himl_tasks.storage.options import whole_number
from himl_tasks.storage.partials import PARTIAL_SUFFIX as PARTIAL_SUFFIX
from himl_tasks.storage.partials import partial_path as partial_path
from himl_tasks.storage.partials import remove_leftovers
from himl_tasks.storage.progress import TransferProgress
from himl_tasks.storage.session import TransferSession
from himl_tasks.storage.transfer_inputs import (
    LocalFile,
    check_flags,
    chosen_files,
    local_path,
    progress_reporter,
    unusable_names,
    walk_files,
)

T = TypeVar("T")
P = ParamSpec("P")
D = TypeVar("D", bound="Datastore")

SMALL_FILE_BYTES = 1024 * 1024
"""Files up to this size are hashed eagerly when uploading (cheap, and overlaps the listing)."""


def _local_errors_translated(
    operation: Callable[Concatenate[D, P], T],
) -> Callable[Concatenate[D, P], T]:
    """Makes a public operation the boundary where OS errors become `LocalFileError`s."""

    @functools.wraps(operation)
    def translated(datastore: D, /, *args: P.args, **kwargs: P.kwargs) -> T:
        with translated_local_errors(datastore.name):
            # A plain attribute, so checked at each operation: 0 would silently do nothing, and
            # a negative one would hang the connection pool.
            whole_number("concurrency", datastore.concurrency)
            return operation(datastore, *args, **kwargs)

    return translated


class Datastore(abc.ABC):
    """A place that holds files under '/'-separated names: a folder or a blob container.

    Subclasses provide a `TransferSession`; every operation here is built on it. Each public
    operation is one boundary where errors of the local file system become `himl_tasks.errors`.

    Attributes:
        name: The datastore's name, used in reports and error messages.
        concurrency: How many files are in flight at once.
    """

    name: str
    concurrency: int

    @abc.abstractmethod
    def _session(self) -> AbstractAsyncContextManager[TransferSession]:
        """Opens the primitives (an HTTP connection pool, for example)."""

    # ---- listing and deleting -------------------------------------------------------------

    @_local_errors_translated
    def list(self, prefix: str = "") -> builtins.list[RemoteFile]:
        """Lists files whose names start with `prefix`, sorted by name.

        Args:
            prefix: A plain string prefix ("foo/b" matches "foo/bar/1.txt"); "" lists everything.
        """
        return _run(self._list(normalize_prefix(prefix)))

    async def _list(self, prefix: str) -> builtins.list[RemoteFile]:
        async with self._session() as session:
            return sorted(await _listed(session, prefix), key=lambda f: f.name)

    @_local_errors_translated
    def exists(self, name: str) -> bool:
        """Tells whether a file of exactly this name exists.

        Raises:
            InvalidInputError: If `name` is not a str or path, or holds a control character.
        """
        return _run(self._exists(check_name_argument("name", name)))

    async def _exists(self, name: str) -> bool:
        async with self._session() as session:
            # Longer than any stored name: asking would only be refused (HTTP 431/414).
            return len(name) <= MAX_BLOB_NAME_CHARS and await session.exists(name)

    @_local_errors_translated
    def delete(self, prefix: str) -> TransferReport:
        """Deletes every file whose name starts with `prefix`.

        Raises:
            InvalidInputError: If `prefix` is empty (to delete everything, delete the container).
        """
        cleaned = normalize_prefix(prefix)
        if not cleaned:
            raise InvalidInputError(
                f"datastore '{self.name}': refusing to delete with an empty prefix; "
                "name the folder or file to delete"
            )
        return _run(self._delete(cleaned))

    async def _delete(self, prefix: str) -> TransferReport:
        started = time.monotonic()
        report = TransferReport("delete", self.name)
        async with self._session() as session:
            found = await _listed(session, prefix)

            async def delete_one(remote: RemoteFile) -> None:
                await session.delete(remote.name)
                report.files += 1
                report.bytes += remote.size

            await run_bounded(found, delete_one, self.concurrency)
        report.seconds = time.monotonic() - started
        return report

    # ---- upload ---------------------------------------------------------------------------

    @_local_errors_translated
    def upload_folder(
        self,
        local_folder: str | PurePath,
        remote_path: str | PurePath = "",
        *,
        overwrite: bool = False,
        skip_identical: bool = True,
        show_progress: bool | TransferProgress = False,
    ) -> TransferReport:
        """Uploads all files in a folder, recursively, without the folder's own name.

        `foo/bar` holding `1.txt` and `a/2.txt`, uploaded to remote_path `baz`, gives `baz/1.txt`
        and `baz/a/2.txt`.

        Args:
            local_folder: The folder to upload.
            remote_path: The folder in the datastore to upload into ("" for the root).
            overwrite: Replace files that exist remotely. If False, existing remote files are
                kept and counted in `skipped_existing` (or `skipped_identical` when equal),
                also one another writer stores while the upload runs.
            skip_identical: Do not send a file whose size and MD5 match the remote copy, even
                with `overwrite=True`; re-uploading an unchanged folder then costs one listing.
            show_progress: Show a progress bar on stderr (True), or report to a
                `TransferProgress` of your own.

        Returns:
            What was transferred and skipped.

        Raises:
            InvalidInputError: If the folder is missing, is a file, holds no files, or holds
                entries that cannot be read as files (fifos, sockets, devices, broken links: all
                listed), or an option is unusable (e.g. remote_path None, overwrite "False").
            UnusableNamesError: If files have names the datastore cannot store (control
                characters, too long, ...): all of them listed, before anything is sent.
            LocalFileError: If a local file cannot be read (also the matching OSError).
            SourceChangedError: If a file changed each time it was read to be sent (nothing
                is stored for it; a file that changed once is sent again as it is now).
            StorageError: If the datastore refuses or fails the transfer.
        """
        folder = local_path("local_folder", local_folder)
        check_flags(overwrite=overwrite, skip_identical=skip_identical)
        if not folder.exists():
            raise InputPathNotFoundError(f"cannot upload {folder}: no such folder")
        if not folder.is_dir():
            raise InvalidInputError(
                f"cannot upload {folder}: it is a file, not a folder; use upload_files for files"
            )

        def walk() -> list[LocalFile]:
            files = walk_files(folder)
            if not files:
                raise InvalidInputError(f"cannot upload {folder}: the folder holds no files")
            return files

        return self._upload_planned(walk, remote_path, overwrite, skip_identical, show_progress)

    @_local_errors_translated
    def upload_files(
        self,
        files: Iterable[str | PurePath],
        remote_path: str | PurePath = "",
        *,
        relative_root: str | PurePath | None = None,
        overwrite: bool = False,
        skip_identical: bool = True,
        show_progress: bool | TransferProgress = False,
    ) -> TransferReport:
        """Uploads individual files under `remote_path`.

        Each file keeps its path relative to `relative_root`, or only its file name when
        `relative_root` is None. Options are as for `upload_folder`.

        Raises:
            InvalidInputError: If a file is missing, is a folder, lies outside `relative_root`,
                or two files would get the same name; also if no file is given.
        """
        if isinstance(files, (str, PurePath)) or not isinstance(files, Iterable):
            raise InvalidInputError(
                f"upload_files needs a list of files, not {type(files).__name__} ({files!r}); "
                "to upload one file, pass [file]"
            )
        check_flags(overwrite=overwrite, skip_identical=skip_identical)
        chosen = chosen_files(files, relative_root)
        return self._upload_planned(
            lambda: chosen, remote_path, overwrite, skip_identical, show_progress
        )

    def _upload_planned(
        self,
        collect_files: Callable[[], Sequence[LocalFile]],
        remote_path: str | PurePath,
        overwrite: bool,
        skip_identical: bool,
        show_progress: bool | TransferProgress,
    ) -> TransferReport:
        folder = normalize_remote_path(remote_path)
        with progress_reporter(show_progress, f"upload to {self.name}") as progress:
            return _run(self._upload(collect_files, folder, overwrite, skip_identical, progress))

    async def _upload(
        self,
        collect_files: Callable[[], Sequence[LocalFile]],
        folder: str,
        overwrite: bool,
        skip_identical: bool,
        progress: TransferProgress,
    ) -> TransferReport:
        started = time.monotonic()
        report = TransferReport("upload", self.name)
        async with self._session() as session:
            # Local files are found and small ones hashed while the listing is in flight: on a
            # re-upload these together are almost all the work.
            listing = asyncio.create_task(session.list_files(f"{folder}/" if folder else ""))
            try:
                files, small_md5s = await asyncio.to_thread(_collect_and_hash, collect_files)
                remote = {f.name: f for f in await listing}
            finally:
                listing.cancel()
            named = [(local, join_blob_name(folder, local.relative)) for local in files]
            await self._refuse_unusable_upload_names(session, named)
            identical = await _identical_pairs(
                [(f.path, f.status, remote[name]) for f, name in named if name in remote],
                small_md5s,
            )
            to_send = _plan(
                [(item, item[1]) for item in named],
                remote,
                identical,
                overwrite=overwrite,
                skip_identical=skip_identical,
                report=report,
            )
            progress.start(len(to_send), sum(local.size for local, _ in to_send))
            hashed_on_the_way: dict[Path, tuple[os.stat_result, bytes]] = {}

            async def send(item: tuple[LocalFile, str]) -> None:
                local, name = item
                sent = await one_file(
                    put_one_state(
                        session, self.name, local.path, name, progress, replace=overwrite
                    ),
                    self.name,
                    local.path,
                    lambda: (
                        f"uploading {local.path} as '{name}' (after {report.files} of "
                        f"{len(to_send)} files were sent)"
                    ),
                    report,
                    progress,
                )
                if sent is None:
                    return
                if sent.md5 is not None and local.path not in small_md5s:
                    hashed_on_the_way[local.path] = (sent.status, sent.md5)
                report.files += 1
                report.bytes += sent.size
                progress.file_done()

            sending_since = time.time_ns()
            await run_bounded(to_send, send, self.concurrency)
            # Big files were hashed while being sent: remember that, so that a re-upload
            # of them does not read them again.
            if hashed_on_the_way:
                await asyncio.to_thread(remember_md5s, hashed_on_the_way, sending_since)
        report.seconds = time.monotonic() - started
        return report

    async def _refuse_unusable_upload_names(
        self, session: TransferSession, named: Sequence[tuple[LocalFile, str]]
    ) -> None:
        # Keyed by local file, the thing to rename; the datastore's name is in the reason.
        sources = {name: os.fsdecode(local.path) for local, name in named}
        refused = {name: p for name in sources if (p := blob_name_problem(name)) is not None}
        usable = [name for name in sources if name not in refused]
        refused.update(await session.write_problems(usable))
        problems = {sources[name]: f"as '{name}': {why}" for name, why in refused.items()}
        if problems:
            raise unusable_names(
                self.name,
                "cannot be uploaded",
                problems,
                "rename or move those files (or choose another remote_path)",
            )

    # ---- download -------------------------------------------------------------------------

    @_local_errors_translated
    def download(
        self,
        prefix: str | PurePath,
        output_folder: str | PurePath,
        *,
        overwrite: bool = False,
        validate_checksum: bool = False,
        skip_identical: bool = True,
        missing_ok: bool = False,
        show_progress: bool | TransferProgress = False,
    ) -> TransferReport:
        """Downloads every file whose name starts with `prefix`, keeping its full name.

        Datastore files `foo/bar/1.txt` and `foo/bar/2.txt`, prefix `foo/bar`, output folder
        `outputs` give `outputs/foo/bar/1.txt` and `outputs/foo/bar/2.txt`. A prefix naming one
        file downloads that file. The output folder is created if missing. Each file is written
        under a temporary name and renamed when complete.

        Args:
            prefix: A plain string prefix of the names to download.
            output_folder: Where the files land.
            overwrite: Replace existing local files. If False they are kept, also one another
                writer creates while the download runs (counted in `skipped_existing`).
            validate_checksum: Check the MD5 of the bytes received against the stored MD5;
                on mismatch raise and write nothing for that file. Files stored without an MD5
                are downloaded and listed in the report's `unverified`.
            skip_identical: Do not fetch a file whose local copy has the same size and MD5.
            missing_ok: Return an empty report, instead of raising, when nothing matches.
            show_progress: Show a progress bar on stderr (True), or report to a
                `TransferProgress` of your own.

        Leftovers of earlier downloads into the same folders that died (their temporary files)
        are removed; those of downloads still running are left alone.

        Raises:
            InvalidInputError: If `output_folder` is a file.
            RemoteFilesNotFoundError: If nothing matches `prefix` and not `missing_ok`.
            UnusableNamesError: If matching names cannot be written under `output_folder`
                (too long for its file system, a file and a folder at once, a file or folder in
                the way, a non-empty name ending in '/'); all of them are listed, checked before
                anything is written.
            UnsafeBlobNameError: The same, when one of them would land outside `output_folder`.
            LocalFileError: If a local file cannot be written (also the matching OSError).
            ChecksumMismatchError: On a checksum mismatch with `validate_checksum`.
            RemoteFileChangedError: If a file was replaced or rewritten each time it was read
                (nothing is written for it; a file that changed once is fetched again whole,
                as it is now).
            StorageError: If the datastore refuses or fails the transfer.
        """
        output = local_path("output_folder", output_folder)
        check_flags(
            overwrite=overwrite,
            validate_checksum=validate_checksum,
            skip_identical=skip_identical,
            missing_ok=missing_ok,
        )
        if output.exists() and not output.is_dir():
            raise InvalidInputError(
                f"cannot download into {output}: it is a file; give a folder (it is created "
                "if missing)"
            )
        with progress_reporter(show_progress, f"download from {self.name}") as progress:
            return _run(
                self._download(
                    normalize_prefix(prefix),
                    output,
                    overwrite=overwrite,
                    validate=validate_checksum,
                    skip_identical=skip_identical,
                    missing_ok=missing_ok,
                    progress=progress,
                )
            )

    async def _download(
        self,
        prefix: str,
        output: Path,
        *,
        overwrite: bool,
        validate: bool,
        skip_identical: bool,
        missing_ok: bool,
        progress: TransferProgress,
    ) -> TransferReport:
        started = time.monotonic()
        report = TransferReport("download", self.name)
        async with self._session() as session:
            # Zero-length names ending in '/' are folder markers some tools write.
            found = [
                f
                for f in await _listed(session, prefix)
                if not (f.name.endswith("/") and f.size == 0)
            ]
            if not found:
                if missing_ok:
                    return report
                raise RemoteFilesNotFoundError(
                    self.name,
                    f"no file name starts with {prefix!r}; check the prefix "
                    "(names are '/'-separated and case-sensitive)",
                )
            problems = await asyncio.to_thread(
                local_write_problems,
                output,
                [f.name for f in found],
                sizes={f.name: f.size for f in found},
            )
            if problems:
                raise unusable_names(
                    self.name,
                    f"cannot be downloaded into {output}",
                    problems,
                    "rename or remove them in the datastore, move what is in the way, or "
                    "download a narrower prefix",
                    unsafe=any(is_unsafe(n) for n in problems if not n.endswith("/")),
                )
            targets = [(remote, local_target(self.name, output, remote.name)) for remote in found]
            existing = _existing_files(targets)
            identical = await _identical_pairs(
                [
                    (target, existing[remote.name], remote)
                    for remote, target in targets
                    if remote.name in existing
                ]
            )
            to_fetch = _plan(
                [(item, item[0].name) for item in targets],
                existing,
                identical,
                overwrite=overwrite,
                skip_identical=skip_identical,
                report=report,
            )
            output.mkdir(parents=True, exist_ok=True)
            # Temporary files of earlier downloads here whose process died (see partials.py).
            await asyncio.to_thread(
                remove_leftovers, {output, *(target.parent for _, target in targets)}
            )
            progress.start(len(to_fetch), sum(remote.size for remote, _ in to_fetch))

            async def fetch(item: tuple[RemoteFile, Path]) -> None:
                listed, target = item
                fetched = await one_file(
                    get_one_state(
                        session, self.name, listed, target, validate, progress, replace=overwrite
                    ),
                    self.name,
                    target,
                    lambda: f"downloading '{listed.name}'",
                    report,
                    progress,
                )
                if fetched is None:
                    return
                remote, verified = fetched
                if validate and not verified:
                    report.unverified.append(remote.name)
                report.files += 1
                report.bytes += remote.size
                progress.file_done()

            await run_bounded(to_fetch, fetch, self.concurrency)
        report.unverified.sort()
        report.seconds = time.monotonic() - started
        return report


async def _listed(session: TransferSession, prefix: str) -> list[RemoteFile]:
    """Lists files under a user's prefix; one longer than any stored name matches none.

    (Asked of the service, such a prefix is refused as a request too large, HTTP 431.)
    """
    if len(prefix) > MAX_BLOB_NAME_CHARS:
        return []
    return await session.list_files(prefix)


async def run_bounded(
    items: Sequence[T], action: Callable[[T], Awaitable[None]], concurrency: int
) -> None:
    """Runs `action` on every item with at most `concurrency` in flight.

    The first error cancels the remaining work (each action cleans up after itself) and is
    raised as it is, not wrapped in an ExceptionGroup. `concurrency` was checked (a whole
    number, at least 1) where the public operation began.
    """
    pending = iter(items)

    async def worker() -> None:
        for item in pending:
            await action(item)

    workers = [asyncio.create_task(worker()) for _ in range(min(concurrency, len(items)))]
    if not workers:
        return
    try:
        done, _ = await asyncio.wait(workers, return_when=asyncio.FIRST_EXCEPTION)
        for task in done:
            if (error := task.exception()) is not None:
                raise error
    finally:
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)


def _plan(
    items: Sequence[tuple[T, str]],
    at_destination: Collection[str],
    identical: Collection[str],
    *,
    overwrite: bool,
    skip_identical: bool,
    report: TransferReport,
) -> list[T]:
    """Chooses the items to transfer; counts the others in the report's skipped fields.

    Args:
        items: Each item with its name.
        at_destination: Names that already exist where the items would go.
        identical: Names whose destination copy has the same size and MD5.
        overwrite: Replace existing destination files.
        skip_identical: Never resend identical files, even with `overwrite`.
        report: Receives the skipped counts.
    """
    chosen: list[T] = []
    for item, name in items:
        if name not in at_destination:
            chosen.append(item)
        elif name in identical and (skip_identical or not overwrite):
            report.skipped_identical += 1
        elif not overwrite:
            report.skipped_existing += 1
        else:
            chosen.append(item)
    return chosen


def _existing_files(targets: Sequence[tuple[RemoteFile, Path]]) -> dict[str, os.stat_result]:
    """Returns {name: local stat} for targets that exist, refusing folders in the way."""
    found: dict[str, os.stat_result] = {}
    for remote, target in targets:
        try:
            status = target.stat()
        except (FileNotFoundError, NotADirectoryError):
            continue
        if stat.S_ISDIR(status.st_mode):
            raise InvalidInputError(
                f"cannot download '{remote.name}' to {target}: a folder is in the way"
            )
        found[remote.name] = status
    return found


async def _identical_pairs(
    candidates: Sequence[tuple[Path, os.stat_result, RemoteFile]],
    known_md5s: dict[Path, bytes] | None = None,
) -> set[str]:
    """Returns the names of remote files whose local counterpart has the same size and MD5.

    Args:
        candidates: Each local file with its `stat()` result and its remote counterpart.
        known_md5s: MD5s already computed for some of the local files.
    """
    comparable = {
        path: (status, remote)
        for path, status, remote in candidates
        if remote.md5 is not None and remote.size == status.st_size
    }
    if not comparable:
        return set()
    known = known_md5s or {}

    def compare() -> set[str]:
        to_hash = [path for path in comparable if path not in known]
        statuses = {path: comparable[path][0] for path in to_hash}
        local = {**known, **files_md5(to_hash, statuses)}
        return {
            remote.name for path, (_, remote) in comparable.items() if local[path] == remote.md5
        }

    return await asyncio.to_thread(compare)


def _collect_and_hash(
    collect_files: Callable[[], Sequence[LocalFile]],
) -> tuple[Sequence[LocalFile], dict[Path, bytes]]:
    files = collect_files()
    small = {f.path: f.status for f in files if f.size <= SMALL_FILE_BYTES}
    return files, files_md5(list(small), small)
