"""Values the storage layer hands back: remote file entries and transfer reports."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Literal

Operation = Literal["upload", "download", "delete"]


@dataclass(frozen=True)
class RemoteFile:
    """One file in a datastore.

    Attributes:
        name: '/'-separated name relative to the datastore root.
        size: Size in bytes.
        md5: The raw 16-byte MD5 the datastore holds, or None if it holds none.
        version: What identifies this state of the file in its datastore (a blob's ETag, a
            folder file's stat fields), so that a read can be pinned to the state listed; None
            if unknown. Not compared: two entries with the same name, size and MD5 are equal.
    """

    name: str
    size: int
    md5: bytes | None = None
    version: str | None = field(default=None, compare=False)

    @property
    def md5_base64(self) -> str | None:
        """The MD5 as Azure writes it (base64), or None."""
        return base64.b64encode(self.md5).decode("ascii") if self.md5 is not None else None


@dataclass
class TransferReport:
    """What one upload, download or delete did.

    Attributes:
        operation: "upload", "download" or "delete".
        datastore: Name of the datastore.
        files: Files transferred (or deleted).
        bytes: Bytes transferred.
        skipped_identical: Files not sent because both sides already hold the same bytes
            (same size and MD5).
        skipped_existing: Files left alone because the destination exists and
            `overwrite=False`; their contents may differ.
        unverified: Names of downloaded files that could not be checked because the datastore
            holds no MD5 for them (only filled when validate_checksum=True).
        seconds: Wall-clock duration.
    """

    operation: Operation
    datastore: str
    files: int = 0
    bytes: int = 0
    skipped_identical: int = 0
    skipped_existing: int = 0
    unverified: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def skipped(self) -> int:
        """Files not transferred, for either reason."""
        return self.skipped_identical + self.skipped_existing

    def add(self, part: TransferReport) -> None:
        """Counts another part of the same operation into this report."""
        self.files += part.files
        self.bytes += part.bytes
        self.skipped_identical += part.skipped_identical
        self.skipped_existing += part.skipped_existing
        self.unverified.extend(part.unverified)
        self.seconds += part.seconds

    def summary(self) -> str:
        """One line for logs, e.g. 'upload to datastore 'x': 12 files, 3.1 MB, ...'."""
        direction = {"upload": "to", "download": "from", "delete": "in"}[self.operation]
        parts = [f"{self.files} files", f"{self.bytes / 1e6:.1f} MB"]
        if self.skipped_identical:
            parts.append(f"{self.skipped_identical} identical skipped")
        if self.skipped_existing:
            parts.append(f"{self.skipped_existing} existing kept")
        if self.unverified:
            parts.append(f"{len(self.unverified)} without MD5, not verified")
        parts.append(f"{self.seconds:.2f} s")
        return f"{self.operation} {direction} datastore '{self.datastore}': " + ", ".join(parts)
