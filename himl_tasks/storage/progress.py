"""Progress of a transfer: files and bytes, shown as a bar on a terminal when asked for."""

from __future__ import annotations

import sys
from types import TracebackType
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from rich.progress import TaskID


class TransferProgress(Protocol):
    """What the transfer engine reports while it works."""

    def start(self, files: int, total_bytes: int) -> None:
        """Announces the size of the work once it is planned."""

    def advance(self, nbytes: int) -> None:
        """Counts bytes moved (called per block for big files)."""

    def file_done(self) -> None:
        """Counts one file finished."""


class SilentProgress:
    """Reports nothing."""

    def start(self, files: int, total_bytes: int) -> None:
        """Ignores the plan."""

    def advance(self, nbytes: int) -> None:
        """Ignores bytes."""

    def file_done(self) -> None:
        """Ignores files."""


class ProgressBar:
    """One bar on stderr: bytes with speed and time remaining, and files done of total."""

    def __init__(self, description: str) -> None:
        # rich is imported only when a bar is shown: it costs 0.1 s to import.
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        self._description = description
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[files_done]}/{task.fields[files_total]} files"),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=Console(file=sys.stderr),
        )
        self._task: TaskID | None = None
        self._files_done = 0

    def __enter__(self) -> ProgressBar:
        self._progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._progress.stop()

    def start(self, files: int, total_bytes: int) -> None:
        """Creates the bar once the plan is known."""
        self._task = self._progress.add_task(
            self._description, total=total_bytes, files_done=0, files_total=files
        )

    def advance(self, nbytes: int) -> None:
        """Moves the bar by bytes."""
        if self._task is not None:
            self._progress.advance(self._task, nbytes)

    def file_done(self) -> None:
        """Counts a finished file."""
        self._files_done += 1
        if self._task is not None:
            self._progress.update(self._task, files_done=self._files_done)
