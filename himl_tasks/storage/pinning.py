"""Reading one state of a file, never a mix of two.

A file can change while it is being transferred: a writer replaces a blob between two range
requests, a local file is truncated, extended or rewritten while it is uploaded. Bytes read across
such a change belong to no state of the file; stored or written, they are silently wrong, and an
MD5 computed over them only makes them look right.

So every read of a file is pinned to the state first seen, and checked at the end:
- a blob by its ETag (`If-Match` on every request after the listing);
- a local file by its stat fields (device, inode, size, modification and change time), taken from
  the open file before its first byte is read and again after its last, and by reading exactly its
  size and then end-of-file.

A session that finds a change raises `ChangedWhileReadError`; the engine then transfers the file
again from scratch, at most `ATTEMPTS` times in all, before failing with an error that names it.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from types import TracebackType

from himl_tasks.errors import InvalidInputError

ATTEMPTS = 3
"""Times a file is transferred from scratch when it changes while read, before giving up."""

_NO_SENDFILE = frozenset({errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.ENOTSOCK})


class ChangedWhileReadError(Exception):
    """A file changed while it was read; what was read must be thrown away.

    The transfer engine catches this and starts the file again; it never reaches a caller.

    Attributes:
        detail: What changed, for the error raised if the file keeps changing.
    """

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


FileState = tuple[int, int, int, int, int]
"""A local file's (device, inode, size, modification ns, change ns): see `file_state`."""


def file_identity(status: os.stat_result) -> tuple[int, int]:
    """Which file this is (device, inode), whatever its name or content."""
    return (status.st_dev, status.st_ino)


def file_state(status: os.stat_result) -> FileState:
    """Returns a local file's state: equal states, same bytes.

    The change time is part of it because the kernel sets it on every change and no tool can set
    it back, unlike the modification time.
    """
    device, inode = file_identity(status)
    return (device, inode, status.st_size, status.st_mtime_ns, status.st_ctime_ns)


def file_version(status: os.stat_result) -> str:
    """Returns a local file's `file_state` as a version tag (as listings carry it)."""
    return ":".join(str(field) for field in file_state(status))


def describe_change(before: os.stat_result, after: os.stat_result) -> str:
    """Says in words how a file's stat fields moved (for error messages)."""
    if file_identity(before) != file_identity(after):
        return "it was replaced by another file"
    if after.st_nlink == 0:
        return "it was replaced or deleted"
    if before.st_size != after.st_size:
        return f"its size changed from {before.st_size} to {after.st_size} bytes"
    return "it was rewritten (its modification or change time moved)"


def _refuse_non_files(path: Path, status: os.stat_result) -> None:
    """Raises if an opened path is not a regular file (it was one when the transfer planned)."""
    if stat.S_ISREG(status.st_mode):
        return
    if stat.S_ISDIR(status.st_mode):
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
    raise InvalidInputError(
        f"cannot read {path}: it became a fifo, socket or device while the transfer ran, not a "
        "regular file; put the file back, or leave it out, and run the transfer again"
    )


class PinnedReader:
    """Reads a local file sequentially, raising `ChangedWhileReadError` if it is not one state.

    Use as a context manager; call `finish` after the last byte, before anything read is kept.

    Args:
        path: The file.
        version: The `file_version` it must have when opened (e.g. from a listing), or None to
            pin it to whatever state it is in when opened.

    Attributes:
        status: The file's stat fields when opened: the state every byte read belongs to.
        size: Bytes to read (the size when opened).
        position: Bytes read so far.
    """

    def __init__(self, path: Path, version: str | None = None) -> None:
        self.path = path
        # Without O_NONBLOCK, opening a fifo (one put where a file was planned) would wait for
        # a writer forever; on a regular file the flag changes nothing.
        flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
        self._fd = os.open(path, flags)
        try:
            self.status = os.fstat(self._fd)
            _refuse_non_files(path, self.status)
            if version is not None and file_version(self.status) != version:
                raise ChangedWhileReadError("it was no longer the version listed")
        except BaseException:
            os.close(self._fd)
            raise
        self.size = self.status.st_size
        self.position = 0
        self._sendfile = hasattr(os, "sendfile")

    def __enter__(self) -> PinnedReader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Closes the file (idempotent)."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    @property
    def remaining(self) -> int:
        """Bytes still to read."""
        return self.size - self.position

    def read(self, count: int) -> bytes:
        """Returns the next `count` bytes (fewer only at the end of the pinned size).

        Raises:
            ChangedWhileReadError: If the file ends before its pinned size.
        """
        wanted = min(count, self.remaining)
        parts: list[bytes] = []
        got = 0
        while got < wanted:
            part = os.pread(self._fd, wanted - got, self.position)
            if not part:
                self._shrunk()
            parts.append(part)
            got += len(part)
            self.position += len(part)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def copy_to(self, destination_fd: int, count: int) -> int:
        """Copies the next `count` bytes (fewer only at the end) to an open file, in the kernel.

        Returns:
            Bytes copied.

        Raises:
            ChangedWhileReadError: If the file ends before its pinned size.
        """
        wanted = min(count, self.remaining)
        copied = 0
        while copied < wanted and self._sendfile:
            try:
                sent = os.sendfile(destination_fd, self._fd, self.position, wanted - copied)
            except OSError as error:
                if error.errno not in _NO_SENDFILE or copied:
                    raise
                self._sendfile = False  # e.g. macOS, or a file system without it
                break
            if sent == 0:
                self._shrunk()
            copied += sent
            self.position += sent
        if copied < wanted:
            data = self.read(wanted - copied)
            view = memoryview(data)
            while view:
                view = view[os.write(destination_fd, view) :]
            copied += len(data)
        return copied

    def finish(self) -> None:
        """Checks that what was read is the whole file in the state it was opened in.

        Raises:
            ChangedWhileReadError: If the file grew past its pinned size, or its stat fields moved.
        """
        if self.remaining:
            raise AssertionError(f"finish() with {self.remaining} bytes of {self.path} unread")
        if os.pread(self._fd, 1, self.size):
            raise ChangedWhileReadError(f"it grew past {self.size} bytes")
        now = os.fstat(self._fd)
        if file_state(now) != file_state(self.status):
            raise ChangedWhileReadError(describe_change(self.status, now))

    def _shrunk(self) -> None:
        now = os.fstat(self._fd)
        raise ChangedWhileReadError(
            f"it ended after {self.position} of {self.size} bytes"
            + (f" ({describe_change(self.status, now)})" if now.st_size != self.size else "")
        )
