"""MD5 of local files, the checksum Azure Blob Storage stores as Content-MD5."""

from __future__ import annotations

import hashlib
from pathlib import Path

CHUNK_SIZE = 4 * 1024 * 1024


def file_md5(path: Path) -> bytes:
    """Returns the raw 16-byte MD5 of a file, reading it in chunks."""
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as stream:
        while chunk := stream.read(CHUNK_SIZE):
            digest.update(chunk)
    return digest.digest()


def bytes_md5(data: bytes) -> bytes:
    """Returns the raw 16-byte MD5 of some bytes."""
    return hashlib.md5(data, usedforsecurity=False).digest()


def new_md5() -> hashlib._Hash:
    """Returns an empty MD5 hasher (MD5 is used as a checksum, not for security)."""
    return hashlib.md5(usedforsecurity=False)
