"""MD5s of local files, remembered so that an unchanged file is not read again to be compared.

Comparing a folder with a datastore needs the MD5 of every local file whose size matches its
remote copy. Reading a large unchanged dataset again on every upload would cost far more than the
listing, so each MD5 is remembered together with the file's stat fields that change whenever its
content can have changed: device, inode, size, modification time and change time (the change time
is set by the kernel and no tool can set it back). A remembered MD5 is used only while all five
still match; otherwise the file is read and hashed again.

A file changed less than `SETTLE_SECONDS` before it was hashed is hashed but not remembered, so
that a second write within the file system's timestamp granularity cannot go unnoticed.

The cache is one SQLite file: `$HIML_CHECKSUM_CACHE`, else `$XDG_CACHE_HOME/himl-tasks/
checksums.sqlite3` (`~/.cache/...` without XDG_CACHE_HOME). `HIML_CHECKSUM_CACHE=off` turns it
off. A cache that cannot be used (read-only, damaged, locked) only makes hashing uncached: it
never fails a transfer. Entries not refreshed for `KEEP_DAYS` days are dropped.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import closing, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from himl_tasks.storage.hashing import file_md5
from himl_tasks.storage.pinning import FileState, file_state

if TYPE_CHECKING:
    import sqlite3

ENVIRONMENT_VARIABLE = "HIML_CHECKSUM_CACHE"
SETTLE_SECONDS = 2.0
KEEP_DAYS = 30
_QUERY_CHUNK = 500

logger = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS md5 (
    path TEXT PRIMARY KEY,
    device INTEGER NOT NULL,
    inode INTEGER NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    ctime_ns INTEGER NOT NULL,
    md5 BLOB NOT NULL,
    stored INTEGER NOT NULL
)
"""


def cache_path() -> Path | None:
    """Returns where the cache lives, or None when it is turned off."""
    configured = os.environ.get(ENVIRONMENT_VARIABLE, "")
    if configured.lower() == "off":
        return None
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "himl-tasks" / "checksums.sqlite3"


def files_md5(
    paths: Sequence[Path], statuses: Mapping[Path, os.stat_result] | None = None
) -> dict[Path, bytes]:
    """Returns the MD5 of each file, reading only those not remembered unchanged.

    Args:
        paths: Regular files (absolute or relative; they are remembered by absolute path).
        statuses: The files' `stat()` results where the caller has them already; the others
            are stat'ed here.

    Returns:
        {path: raw 16-byte MD5} for every path given.

    Raises:
        OSError: If a file cannot be stat'ed or read, as hashing it directly would.
    """
    if not paths:
        return {}
    location = cache_path()
    known = statuses or {}
    stamps = {path: file_state(known.get(path) or path.stat()) for path in paths}
    keys = {path: str(path.absolute()) for path in paths}
    remembered = _recall(location, list(keys.values())) if location else {}
    found: dict[Path, bytes] = {}
    fresh: list[tuple[str, FileState, bytes]] = []
    for path in paths:
        known_md5 = remembered.get(keys[path])
        if known_md5 is not None and known_md5[0] == stamps[path]:
            found[path] = known_md5[1]
            continue
        started_ns = time.time_ns()
        found[path] = file_md5(path)
        # Remembered only if the file still has the stat fields it had before it was read:
        # bytes hashed while it changed are not one state of it.
        if _settled(stamps[path], started_ns) and _unchanged(path, stamps[path]):
            fresh.append((keys[path], stamps[path], found[path]))
    if location and fresh:
        _remember(location, fresh)
    return found


def remember_md5s(
    md5s: Mapping[Path, tuple[os.stat_result, bytes]], unchanged_since_ns: int
) -> None:
    """Remembers MD5s computed along the way, e.g. while the files were being uploaded.

    Args:
        md5s: {path: (the file's stat fields while it was read, MD5 of the bytes read)}; the
            reader checked that every byte read belongs to that one state of the file.
        unchanged_since_ns: When reading began (`time.time_ns()`). A file is remembered only if
            it still has the stat fields it was read with, and they are from `SETTLE_SECONDS`
            or more before then, so that they describe the bytes that were read.
    """
    location = cache_path()
    if location is None or not md5s:
        return
    entries = []
    for path, (read_as, md5) in md5s.items():
        try:
            stamp = file_state(path.stat())
        except OSError:
            continue  # gone since: nothing to remember
        if stamp == file_state(read_as) and _settled(stamp, unchanged_since_ns):
            entries.append((str(path.absolute()), stamp, md5))
    if entries:
        _remember(location, entries)


def _unchanged(path: Path, stamp: FileState) -> bool:
    try:
        return file_state(path.stat()) == stamp
    except OSError:
        return False


def _settled(stamp: FileState, read_from_ns: int) -> bool:
    """Tells whether a file's last change came `SETTLE_SECONDS` before it was read."""
    return read_from_ns - max(stamp[3], stamp[4]) > SETTLE_SECONDS * 1e9


def _recall(location: Path, keys: list[str]) -> dict[str, tuple[FileState, bytes]]:
    if not location.exists():
        return {}
    found: dict[str, tuple[FileState, bytes]] = {}
    try:
        with _connection(location) as database:
            for start in range(0, len(keys), _QUERY_CHUNK):
                chunk = keys[start : start + _QUERY_CHUNK]
                rows = database.execute(
                    "SELECT path, device, inode, size, mtime_ns, ctime_ns, md5 FROM md5 "
                    f"WHERE path IN ({','.join('?' * len(chunk))})",
                    chunk,
                )
                for path, device, inode, size, mtime_ns, ctime_ns, md5 in rows:
                    found[path] = ((device, inode, size, mtime_ns, ctime_ns), bytes(md5))
    except _cache_errors() as error:
        _unusable(location, error)
        return {}
    return found


def _remember(location: Path, entries: list[tuple[str, FileState, bytes]]) -> None:
    now = int(time.time())
    try:
        location.parent.mkdir(parents=True, exist_ok=True)
        with _connection(location) as database, database:
            database.executemany(
                "INSERT OR REPLACE INTO md5 VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [(key, *stamp, md5, now) for key, stamp, md5 in entries],
            )
            database.execute("DELETE FROM md5 WHERE stored < ?", (now - KEEP_DAYS * 86400,))
    except _cache_errors() as error:
        _unusable(location, error)


@contextmanager
def _connection(location: Path) -> Iterator[sqlite3.Connection]:
    import sqlite3

    with closing(sqlite3.connect(location, timeout=0.25)) as database:
        database.execute(_SCHEMA)
        yield database


def _cache_errors() -> tuple[type[Exception], ...]:
    import sqlite3

    return (sqlite3.Error, OSError)


def _unusable(location: Path, error: Exception) -> None:
    if getattr(error, "sqlite_errorname", "") in ("SQLITE_BUSY", "SQLITE_LOCKED"):
        # Another process is writing it: only this lookup goes uncached.
        logger.debug("the checksum cache %s is busy (%s)", location, error)
        return
    logger.warning(
        "the checksum cache %s cannot be used (%s); files are hashed without it. Delete the "
        "file, or set %s=off to stop using it.",
        location,
        error,
        ENVIRONMENT_VARIABLE,
    )
