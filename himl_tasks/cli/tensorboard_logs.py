"""Runs' TensorBoard event files, brought to this machine and kept in sync while runs go on.

Only event files (names with `tfevents`, which is what TensorBoard reads from a log folder) are
fetched, not everything under the log folder: `outputs/` also holds checkpoints. Each run's
files land in `<root>/<run id>/`, keeping their names in the run, so TensorBoard shows one run
per subfolder. A file is fetched again when the datastore lists it at another size or version,
through the transfer engine (temporary name, rename, MD5 check where the datastore keeps one),
into a staging folder beside. An event file only grows, and TensorBoard keeps reading the file
it opened: so what was added is appended to the local copy in place. A file replaced by a new
one in the rename way would never be read again by a TensorBoard already running. A file that
did not merely grow (rewritten) replaces the local copy.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from himl_tasks.backends.base import Backend
from himl_tasks.backends.run_files import run_file_prefixes
from himl_tasks.errors import HimlError, InvalidInputError
from himl_tasks.runs import RunRef

logger = logging.getLogger(__name__)

EVENT_FILE_MARK = "tfevents"
DEFAULT_PASS_DEADLINE_SECONDS = 60.0
DEFAULT_INTERVAL_SECONDS = 5.0


@dataclass
class TensorBoardLogs:
    """The event files of some runs under `log_dir`, mirrored into `root/<run id>/`.

    Attributes:
        backend: The runs' workspace.
        refs: The runs.
        log_dir: Where in each run its event files are (e.g. `outputs`).
        root: The local folder TensorBoard reads.
        staging: Where files land before they are appended or moved into `root` (outside it,
            so TensorBoard never reads a half-merged file).
        stop: Once set, a pass fetches no further file (Ctrl-C, SIGTERM, the thread stopped).

    Raises:
        InvalidInputError: If `log_dir` lies outside the run's folders (`run_file_folders`).
    """

    backend: Backend
    refs: list[RunRef]
    log_dir: str
    root: Path
    staging: Path
    stop: threading.Event = field(default_factory=threading.Event)
    _seen: dict[tuple[str, str], tuple[int, str | None]] = field(default_factory=dict)
    _finished: set[str] = field(default_factory=set)
    _prefixes: list[str] = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        log_dir = self.log_dir.strip("/")
        # Looked for among the run's files only, as every reader of a run's files does.
        self._prefixes = run_file_prefixes(
            log_dir + "/" if log_dir else "", self.backend.run_file_folders
        )
        if not self._prefixes:
            raise InvalidInputError(
                f"--log_dir '{self.log_dir}' is not among a run's files: they are under "
                f"{', '.join(self.backend.run_file_folders)}"
            )

    def folder(self, ref: RunRef) -> Path:
        """Where the run's event files land."""
        return self.root / ref.run_id

    def sync(self, *, deadline_seconds: float = DEFAULT_PASS_DEADLINE_SECONDS) -> int:
        """One pass: fetches new and changed event files of the runs still going.

        A pass stops starting new files at its deadline, or once `stop` is set; the rest come
        in the next pass.

        Returns:
            How many files were fetched.
        """
        deadline = time.monotonic() + deadline_seconds
        fetched = 0
        for ref in self.refs:
            if ref.recovery_id in self._finished or self.stop.is_set():
                continue
            # Read before listing: a run that has ended has written its last file.
            ended = self.backend.get_state(ref).is_terminal
            fetched += self._sync_run(ref, deadline)
            if ended and time.monotonic() < deadline and not self.stop.is_set():
                self._finished.add(ref.recovery_id)
        return fetched

    @property
    def all_finished(self) -> bool:
        """True once every run has ended and its last files are here."""
        return len(self._finished) == len(self.refs)

    def event_file_count(self) -> int:
        """How many event files are here."""
        return sum(1 for _ in self.root.rglob(f"*{EVENT_FILE_MARK}*"))

    def _sync_run(self, ref: RunRef, deadline: float) -> int:
        store = self.backend.run_files(ref)
        fetched = 0
        for remote in (found for prefix in self._prefixes for found in store.list(prefix)):
            if EVENT_FILE_MARK not in remote.name.rsplit("/", 1)[-1]:
                continue
            key, mark = (ref.recovery_id, remote.name), (remote.size, remote.version)
            if self._seen.get(key) == mark:
                continue
            if time.monotonic() > deadline or self.stop.is_set():
                break
            staged = self.staging / ref.run_id
            store.download(remote.name, staged, overwrite=True, validate_checksum=True)
            merge_grown_file(staged / remote.name, self.folder(ref) / remote.name)
            self._seen[key] = mark
            fetched += 1
        return fetched


CHUNK_BYTES = 1 << 20


def merge_grown_file(new: Path, local: Path) -> None:
    """Brings `local` to `new`'s bytes: appends the tail if `new` only grew, else replaces it.

    `new` is consumed (moved, or deleted once its tail is appended).
    """
    local.parent.mkdir(parents=True, exist_ok=True)
    old_size = local.stat().st_size if local.exists() else None
    if old_size is not None and new.stat().st_size >= old_size and _starts_with(new, local):
        with new.open("rb") as source, local.open("ab") as target:
            source.seek(old_size)
            while chunk := source.read(CHUNK_BYTES):
                target.write(chunk)
        new.unlink()
        return
    new.replace(local)


def _starts_with(longer: Path, shorter: Path) -> bool:
    with longer.open("rb") as a, shorter.open("rb") as b:
        while chunk := b.read(CHUNK_BYTES):
            if a.read(len(chunk)) != chunk:
                return False
    return True


class LogSyncThread(threading.Thread):
    """Keeps `TensorBoardLogs` in sync in the background until stopped or every run ended."""

    def __init__(
        self,
        logs: TensorBoardLogs,
        *,
        interval_seconds: float = DEFAULT_INTERVAL_SECONDS,
        deadline_seconds: float = DEFAULT_PASS_DEADLINE_SECONDS,
    ) -> None:
        super().__init__(name="himl-tb-log-sync", daemon=True)
        self.logs = logs
        self.interval_seconds = interval_seconds
        self.deadline_seconds = deadline_seconds
        self.stopped = threading.Event()

    def run(self) -> None:
        """Syncs every `interval_seconds`; a failed pass is logged and tried again."""
        while not self.logs.all_finished and not self.stopped.wait(self.interval_seconds):
            try:
                fetched = self.logs.sync(deadline_seconds=self.deadline_seconds)
            except HimlError as error:
                logger.warning("syncing TensorBoard logs failed, trying again: %s", error)
                continue
            if fetched:
                logger.info("fetched %d new or changed event file(s)", fetched)

    def stop(self, timeout_seconds: float = 30.0) -> None:
        """Asks the thread to stop and waits for its current file, up to the timeout."""
        self.stopped.set()
        self.logs.stop.set()  # the pass going on ends after its current file
        self.join(timeout_seconds)
