"""The local workspace's SQLite registry: runs, attempts, metrics, datasets, clusters, datastores.

Many processes share one registry at once (a flow, the supervisors of its runs, the jobs logging
metrics), so the database runs in WAL mode with a generous busy timeout, every connection is
short-lived, and every write is one `BEGIN IMMEDIATE` transaction.
"""

from __future__ import annotations

import datetime
import json
import math
import sqlite3
import time
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from himl_tasks.backends.local.launch_plan import LaunchPlan
from himl_tasks.backends.local.processes import is_alive
from himl_tasks.runs import FailureKind, Metric, RunStatus

DATABASE_NAME = "registry.sqlite"
BUSY_TIMEOUT_MS = 60_000

# Statuses in which a run holds one of its cluster's slots.
SLOT_HOLDING = (
    RunStatus.PREPARING, RunStatus.RUNNING, RunStatus.FINALIZING, RunStatus.CANCEL_REQUESTED,
)  # fmt: skip
TERMINAL = tuple(s for s in RunStatus if s.is_terminal)

# Databases whose schema this process has already made sure of.
_READY: set[Path] = set()

_SCHEMA = """
CREATE TABLE IF NOT EXISTS experiments (
    name TEXT PRIMARY KEY,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS clusters (
    name TEXT PRIMARY KEY,
    max_concurrent_runs INTEGER NOT NULL,
    preemption TEXT
);
CREATE TABLE IF NOT EXISTS runs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL UNIQUE,
    experiment TEXT NOT NULL REFERENCES experiments(name),
    display_name TEXT NOT NULL,
    parent_run_id TEXT,
    compute TEXT NOT NULL,
    priority TEXT NOT NULL,
    status TEXT NOT NULL,
    attempt INTEGER NOT NULL DEFAULT 1,
    failure_kind TEXT,
    error TEXT NOT NULL DEFAULT '',
    exit_code INTEGER,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    tags TEXT NOT NULL,
    parameters TEXT NOT NULL,
    launch_plan TEXT NOT NULL,
    run_dir TEXT NOT NULL,
    supervisor_pid INTEGER,
    supervisor_started TEXT,
    job_group INTEGER,
    submission_id TEXT,
    launcher_pid INTEGER,
    launcher_started TEXT,
    created_at REAL NOT NULL,
    started_at REAL,
    ended_at REAL
);
CREATE TABLE IF NOT EXISTS attempts (
    run_id TEXT NOT NULL REFERENCES runs(run_id),
    attempt INTEGER NOT NULL,
    status TEXT NOT NULL,
    failure_kind TEXT,
    error TEXT NOT NULL DEFAULT '',
    exit_code INTEGER,
    started_at REAL,
    ended_at REAL,
    PRIMARY KEY (run_id, attempt)
);
CREATE TABLE IF NOT EXISTS status_events (
    run_id TEXT NOT NULL REFERENCES runs(run_id),
    attempt INTEGER NOT NULL,
    status TEXT NOT NULL,
    time REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS metrics (
    run_id TEXT NOT NULL REFERENCES runs(run_id),
    attempt INTEGER NOT NULL,
    name TEXT NOT NULL,
    value REAL NOT NULL,
    step INTEGER,
    time REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS metrics_by_run ON metrics (run_id);
-- Text a job logged as a metric value (hi-ml's hyperparameter table): a table of its own, since
-- `metrics.value` is REAL and SQLite would turn a text such as "0.1" into a number there.
CREATE TABLE IF NOT EXISTS text_metrics (
    run_id TEXT NOT NULL REFERENCES runs(run_id),
    attempt INTEGER NOT NULL,
    name TEXT NOT NULL,
    value TEXT NOT NULL,
    step INTEGER,
    time REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS text_metrics_by_run ON text_metrics (run_id);
CREATE TABLE IF NOT EXISTS datasets (
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    datastore TEXT NOT NULL,
    path TEXT NOT NULL,
    created_by_run TEXT,
    created_at REAL NOT NULL,
    PRIMARY KEY (name, version)
);
CREATE TABLE IF NOT EXISTS datastores (
    name TEXT PRIMARY KEY,
    settings TEXT NOT NULL
);
"""
# Columns added after the first release: a registry made before them gains them on open.
_ADDED_RUN_COLUMNS = {
    "submission_id": "TEXT",
    "launcher_pid": "INTEGER",
    "launcher_started": "TEXT",
    # A pipeline step's identity (`step_reuse`), and for a step that took an earlier run's
    # outputs instead of running, that run.
    "step_identity": "TEXT",
    "reused_from": "TEXT",
}
# The same for the datasets table: a version a run made records a digest of its files (its
# listing's names, sizes and MD5s), so a version damaged since is not taken for it.
_ADDED_DATASET_COLUMNS = {"content_digest": "TEXT"}
_INDEXES = """
CREATE UNIQUE INDEX IF NOT EXISTS runs_by_submission ON runs (submission_id);
CREATE INDEX IF NOT EXISTS runs_by_step_identity ON runs (step_identity);
CREATE INDEX IF NOT EXISTS runs_by_compute_status ON runs (compute, status);
"""


@dataclass(frozen=True)
class RunRow:
    """A run as the registry holds it."""

    run_id: str
    experiment: str
    display_name: str
    parent_run_id: str | None
    compute: str
    priority: str
    status: RunStatus
    attempt: int
    failure_kind: str | None
    error: str
    exit_code: int | None
    cancel_requested: bool
    tags: dict[str, str]
    parameters: dict[str, Any]
    launch_plan_json: str
    run_dir: Path
    supervisor_pid: int | None
    supervisor_started: str | None
    job_group: int | None
    submission_id: str | None
    launcher_pid: int | None
    launcher_started: str | None
    created_at: float
    started_at: float | None
    ended_at: float | None
    step_identity: str | None = None
    reused_from: str | None = None

    @property
    def launch_plan(self) -> LaunchPlan:
        """What the run's supervisor starts and watches (read from the JSON on each call).

        Raises:
            ConfigurationError: The run was submitted by a version of himl-tasks whose launch
                plans this version cannot read.
        """
        return LaunchPlan.from_json(self.launch_plan_json)

    def supervisor_alive(self) -> bool:
        """Tells whether the run's recorded supervisor process still runs."""
        pid, started = self.supervisor_pid, self.supervisor_started
        return pid is not None and is_alive(pid, started or "")

    def launcher_alive(self) -> bool:
        """Tells whether the process that claimed (or submitted) the run still runs."""
        pid, started = self.launcher_pid, self.launcher_started
        return pid is not None and is_alive(pid, started or "")

    def has_live_process(self) -> bool:
        """Tells whether a process still looks after the run.

        That is its supervisor once one recorded itself, else the launcher starting it.
        """
        return self.supervisor_alive() if self.supervisor_pid is not None else self.launcher_alive()


class Registry:
    """One workspace's registry database.

    Args:
        root: The workspace folder; the database is `<root>/registry.sqlite`.
    """

    def __init__(self, root: Path, *, create: bool = True) -> None:
        self.root = root
        self.path = root / DATABASE_NAME
        if not create and not self.path.is_file():
            raise FileNotFoundError(f"no workspace registry at {self.path}")
        # Once per process (jobs open a registry per metric), or again if the file went away.
        if self.path not in _READY or (create and not self.path.is_file()):
            if create:
                root.mkdir(parents=True, exist_ok=True)
            with self._connect(create=create) as db:
                db.execute("PRAGMA journal_mode=WAL")
                db.executescript(_SCHEMA)
                known = {row["name"] for row in db.execute("PRAGMA table_info(runs)")}
                if "spec" in known:  # the launch plan's column before it had its name
                    db.execute("ALTER TABLE runs RENAME COLUMN spec TO launch_plan")
                for column, kind in _ADDED_RUN_COLUMNS.items():
                    if column not in known:
                        db.execute(f"ALTER TABLE runs ADD COLUMN {column} {kind}")
                known = {row["name"] for row in db.execute("PRAGMA table_info(datasets)")}
                for column, kind in _ADDED_DATASET_COLUMNS.items():
                    if column not in known:
                        db.execute(f"ALTER TABLE datasets ADD COLUMN {column} {kind}")
                db.executescript(_INDEXES)
            _READY.add(self.path)

    @contextmanager
    def _connect(self, *, create: bool = False) -> Iterator[sqlite3.Connection]:
        # Opened read-write but never created after the first time: a registry that vanished
        # (its workspace deleted) is an error for whoever still uses it, not a new empty one.
        mode = "rwc" if create else "rw"
        db = sqlite3.connect(
            f"{self.path.as_uri()}?mode={mode}",
            uri=True,
            timeout=BUSY_TIMEOUT_MS / 1000,
            isolation_level=None,
        )
        try:
            db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            db.row_factory = sqlite3.Row
            yield db
        finally:
            db.close()

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction: taken at once (BEGIN IMMEDIATE), committed on success."""
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """A connection for reads (each statement sees a consistent snapshot)."""
        with self._connect() as db:
            yield db

    # ---- runs -----------------------------------------------------------------------------

    def insert_run(
        self,
        *,
        run_id: str,
        experiment: str,
        display_name: str,
        compute: str,
        priority: str,
        tags: dict[str, str],
        parameters: dict[str, Any],
        launch_plan: LaunchPlan,
        run_dir: Path,
        parent_run_id: str | None = None,
        submission_id: str | None = None,
        submitter: tuple[int, str] | None = None,
        step_identity: str | None = None,
        reused_from: tuple[str, int] | None = None,
    ) -> str | None:
        """Records a new run, Queued for a slot of its cluster, unless its submission has one.

        The check and the insert are one transaction, and `submission_id` is a unique column:
        two submissions with the same id, at once or years apart, record one run.

        `submitter` (pid, start marker) is recorded as the run's launcher until one claims
        it: the process holding the secrets the run's references name.

        `step_identity` is the identity of the pipeline step the run is (see `step_reuse`).
        `reused_from`, for a step that takes an earlier run's outputs instead of running, is
        that run's id and how many dataset versions it registered: the run is recorded
        Completed at once, never queued, if that run is still Completed with that many
        versions, in the same transaction; otherwise nothing is recorded.

        Returns:
            The id of the run holding the submission: `run_id`, or the run recorded earlier
            under `submission_id`; None when the run `reused_from` names changed since.
        """
        now = time.time()
        with self.write() as db:
            if submission_id is not None:
                found = db.execute(
                    "SELECT run_id FROM runs WHERE submission_id = ?", (submission_id,)
                ).fetchone()
                if found is not None:
                    return str(found["run_id"])
            if reused_from is not None and not _still_reusable(db, *reused_from):
                return None
            db.execute(
                "INSERT OR IGNORE INTO experiments (name, created_at) VALUES (?, ?)",
                (experiment, now),
            )
            db.execute(
                "INSERT INTO runs (run_id, experiment, display_name, parent_run_id, compute, "
                "priority, status, tags, parameters, launch_plan, run_dir, created_at, "
                "submission_id, launcher_pid, launcher_started, step_identity, reused_from) "
                f"VALUES ({', '.join('?' * 17)})",
                (
                    run_id,
                    experiment,
                    display_name,
                    parent_run_id,
                    compute,
                    priority,
                    RunStatus.QUEUED.value,
                    json.dumps(tags),
                    json.dumps(parameters),
                    launch_plan.to_json(),
                    str(run_dir),
                    now,
                    submission_id,
                    *(submitter or (None, None)),
                    step_identity,
                    None if reused_from is None else reused_from[0],
                ),
            )
            db.execute(
                "INSERT INTO attempts (run_id, attempt, status) VALUES (?, 1, ?)",
                (run_id, RunStatus.QUEUED.value),
            )
            _record_status(db, run_id, 1, RunStatus.NOT_STARTED, now)
            _record_status(db, run_id, 1, RunStatus.QUEUED, now)
            if reused_from is not None:  # nothing to run: it ends as it is made
                self.move(run_id, RunStatus.COMPLETED, within=db)
                for table in ("runs", "attempts"):
                    db.execute(
                        f"UPDATE {table} SET started_at = ended_at WHERE run_id = ?", (run_id,)
                    )
            return run_id

    def reusable_runs(self, step_identity: str) -> list[RunRow]:
        """The Completed runs of a pipeline step of that identity that ran, newest first.

        Runs that took another run's outputs are left out: their outputs are that run's.
        """
        with self.read() as db:
            rows = db.execute(
                "SELECT * FROM runs WHERE step_identity = ? AND status = ? AND reused_from IS "
                "NULL ORDER BY seq DESC",
                (step_identity, RunStatus.COMPLETED.value),
            ).fetchall()
        return [_run_row(row) for row in rows]

    def find_submission(self, submission_id: str) -> RunRow | None:
        """Returns the run recorded under a submission id, or None."""
        with self.read() as db:
            row = db.execute(
                "SELECT * FROM runs WHERE submission_id = ?", (submission_id,)
            ).fetchone()
        return _run_row(row) if row is not None else None

    def get_run(self, run_id: str) -> RunRow | None:
        """Returns the run, or None."""
        with self.read() as db:
            row = db.execute("SELECT * FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        return _run_row(row) if row is not None else None

    def runs(self, parent_run_id: str | None = None) -> list[RunRow]:
        """Returns runs, oldest first: all of them, or the children of one run."""
        query = "SELECT * FROM runs"
        args: tuple[str, ...] = ()
        if parent_run_id is not None:
            query += " WHERE parent_run_id = ?"
            args = (parent_run_id,)
        with self.read() as db:
            rows = db.execute(query + " ORDER BY seq", args).fetchall()
        return [_run_row(row) for row in rows]

    def claim_slots(
        self,
        compute: str,
        max_concurrent_runs: int,
        launcher: tuple[int, str],
        held_secrets: Collection[str] = (),
    ) -> list[str]:
        """Gives the cluster's free slots to its oldest Queued runs, moving them to Preparing.

        One transaction: two launchers never claim one run, nor more slots than the cluster
        has. Each claimed run records its launcher (pid, start marker) until its supervisor
        records itself, so a launcher that died before starting the supervisor is noticed.

        A run whose secret references name a variable the launcher does not hold is left to
        the process that submitted it, which does, and the slot goes to the next run: a
        submitter that holds its run's secret but never looks at the run must not hold up
        everyone else's. If that process has ended, nobody holds the secret any more, and the
        run is Failed saying so.

        Args:
            compute: The cluster.
            max_concurrent_runs: Its limit on runs at once.
            launcher: The claiming process: pid and start marker.
            held_secrets: The names of the secrets the launcher can hand a supervisor.

        Returns:
            The claimed runs, oldest first: the caller starts a supervisor for each.
        """
        with self.write() as db:
            free = max_concurrent_runs - _slots_held(db, compute)
            waiting = db.execute(
                "SELECT run_id, launcher_pid, launcher_started, launch_plan FROM runs "
                "WHERE compute = ? AND status = ? AND supervisor_pid IS NULL ORDER BY seq",
                (compute, RunStatus.QUEUED.value),
            )
            claimed: list[str] = []
            for row in waiting:
                if len(claimed) >= free:
                    break
                # A damaged plan names no secret: its supervisor fails the run, saying why.
                needed = _secret_variables(row["launch_plan"])
                missing = sorted(needed - set(held_secrets))
                if missing:
                    submitter = row["launcher_pid"], row["launcher_started"] or ""
                    if submitter[0] is not None and is_alive(*submitter):
                        # Its submitter holds the secret and starts it when it looks at it;
                        # the runs behind it do not wait for that.
                        continue
                    self.move(
                        row["run_id"], RunStatus.FAILED, failure_kind="user_error",
                        error=f"the job's secret reference names environment variable "
                        f"{', '.join(missing)}; the process that submitted the run, the only "
                        "one holding its value, ended before the run could start: submit the "
                        "job again", within=db,
                    )  # fmt: skip
                    continue
                queued = (RunStatus.QUEUED,)
                self.move(row["run_id"], RunStatus.PREPARING, only_from=queued, within=db)
                db.execute(
                    "UPDATE runs SET launcher_pid = ?, launcher_started = ? WHERE run_id = ?",
                    (*launcher, row["run_id"]),
                )
                claimed.append(str(row["run_id"]))
            return claimed

    def slot_holders(self, compute: str) -> list[RunRow]:
        """The runs holding a slot of the cluster, oldest first."""
        holding = ",".join("?" * len(SLOT_HOLDING))
        with self.read() as db:
            rows = db.execute(
                f"SELECT * FROM runs WHERE compute = ? AND status IN ({holding}) ORDER BY seq",
                (compute, *[s.value for s in SLOT_HOLDING]),
            ).fetchall()
        return [_run_row(row) for row in rows]

    def startable(self, compute: str, max_concurrent_runs: int) -> bool:
        """Tells whether the cluster has a free slot and a Queued run to give it to (a read)."""
        with self.read() as db:
            if _slots_held(db, compute) >= max_concurrent_runs:
                return False
            return (
                db.execute(
                    "SELECT 1 FROM runs WHERE compute = ? AND status = ? AND supervisor_pid "
                    "IS NULL LIMIT 1",
                    (compute, RunStatus.QUEUED.value),
                ).fetchone()
                is not None
            )

    def take_over_launch(
        self, run_id: str, previous: tuple[int, str], launcher: tuple[int, str]
    ) -> bool:
        """Makes `launcher` the launcher of a claimed run whose launcher died before starting it.

        Returns:
            Whether it did (False: someone else took it over, or a supervisor recorded itself).
        """
        with self.write() as db:
            changed = db.execute(
                "UPDATE runs SET launcher_pid = ?, launcher_started = ? WHERE run_id = ? AND "
                "COALESCE(launcher_pid, 0) = ? AND COALESCE(launcher_started, '') = ? AND "
                "supervisor_pid IS NULL",
                (*launcher, run_id, *previous),
            ).rowcount
        return bool(changed)

    def set_supervisor(self, run_id: str, pid: int, started: str) -> None:
        """Records the process just started to supervise the run (unless one recorded itself)."""
        with self.write() as db:
            db.execute(
                "UPDATE runs SET supervisor_pid = ?, supervisor_started = ? WHERE run_id = ? "
                "AND supervisor_pid IS NULL",
                (pid, started, run_id),
            )

    def adopt(self, run_id: str, pid: int, started: str) -> RunRow | None:
        """A supervisor's claim on its run: recorded unless another process supervises it.

        Returns:
            The run, if this process is now its one supervisor; None if the run has ended,
            was never given a slot, or another supervisor has it.
        """
        holding = ",".join("?" * len(SLOT_HOLDING))
        with self.write() as db:
            changed = db.execute(
                "UPDATE runs SET supervisor_pid = ?, supervisor_started = ? WHERE run_id = ? "
                f"AND status IN ({holding}) AND (supervisor_pid IS NULL OR "
                "(supervisor_pid = ? AND COALESCE(supervisor_started, '') IN ('', ?)))",
                (pid, started, run_id, *[s.value for s in SLOT_HOLDING], pid, started),
            ).rowcount
            if not changed:
                return None
            row = db.execute("SELECT * FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        return _run_row(row)

    def set_job_group(self, run_id: str, group: int | None) -> None:
        """Records the process group of the run's job processes (None once they ended)."""
        with self.write() as db:
            db.execute("UPDATE runs SET job_group = ? WHERE run_id = ?", (group, run_id))

    def move(
        self,
        run_id: str,
        status: RunStatus,
        *,
        only_from: tuple[RunStatus, ...] | None = None,
        failure_kind: str | None = None,
        error: str = "",
        exit_code: int | None = None,
        within: sqlite3.Connection | None = None,
    ) -> bool:
        """Moves a run (and its current attempt) to a status; a terminal run never moves.

        Args:
            run_id: The run.
            status: The status to move to.
            only_from: Move only from these statuses (default: any non-terminal one).
            failure_kind: Why the run did not complete, for Failed and Canceled.
            error: The error text to record ("" keeps the current one).
            exit_code: The job's exit code, once known.
            within: A write transaction already open, to move as part of it.

        Returns:
            Whether the run moved.
        """
        if within is None:
            with self.write() as db:
                return self.move(
                    run_id, status, only_from=only_from, failure_kind=failure_kind,
                    error=error, exit_code=exit_code, within=db,
                )  # fmt: skip
        db = within
        allowed = only_from or tuple(s for s in RunStatus if not s.is_terminal)
        marks = ",".join("?" * len(allowed))
        row = db.execute(
            f"SELECT attempt FROM runs WHERE run_id = ? AND status IN ({marks})",
            (run_id, *[s.value for s in allowed]),
        ).fetchone()
        if row is None:
            return False
        now = time.time()
        started = now if status is RunStatus.RUNNING else None
        ended = now if status.is_terminal else None
        db.execute(
            "UPDATE runs SET status = ?, failure_kind = COALESCE(?, failure_kind), "
            "error = CASE WHEN ? != '' THEN ? ELSE error END, "
            "exit_code = COALESCE(?, exit_code), started_at = COALESCE(started_at, ?), "
            "ended_at = COALESCE(?, ended_at) WHERE run_id = ?",
            (status.value, failure_kind, error, error, exit_code, started, ended, run_id),
        )
        db.execute(
            "UPDATE attempts SET status = ?, failure_kind = COALESCE(?, failure_kind), "
            "error = CASE WHEN ? != '' THEN ? ELSE error END, "
            "exit_code = COALESCE(?, exit_code), started_at = COALESCE(started_at, ?), "
            "ended_at = COALESCE(?, ended_at) WHERE run_id = ? AND attempt = ?",
            (status.value, failure_kind, error, error, exit_code, started, ended, run_id,
             row["attempt"]),
        )  # fmt: skip
        _record_status(db, run_id, int(row["attempt"]), status, now)
        return True

    def start_next_attempt(
        self, run_id: str, *, failure_kind: str, error: str, exit_code: int | None
    ) -> int:
        """Ends the current attempt as Failed and queues the next one; returns its number."""
        now = time.time()
        with self.write() as db:
            attempt = int(
                db.execute("SELECT attempt FROM runs WHERE run_id = ?", (run_id,)).fetchone()[0]
            )
            db.execute(
                "UPDATE attempts SET status = ?, failure_kind = ?, error = ?, exit_code = ?, "
                "ended_at = ? WHERE run_id = ? AND attempt = ?",
                (RunStatus.FAILED.value, failure_kind, error, exit_code, now, run_id, attempt),
            )
            db.execute(
                "INSERT INTO attempts (run_id, attempt, status) VALUES (?, ?, ?)",
                (run_id, attempt + 1, RunStatus.QUEUED.value),
            )
            # Queued, but still with its supervisor (waiting out the restart delay) until
            # `requeue`: no launcher starts it before.
            db.execute(
                "UPDATE runs SET attempt = ?, status = ? WHERE run_id = ?",
                (attempt + 1, RunStatus.QUEUED.value, run_id),
            )
            _record_status(db, run_id, attempt, RunStatus.FAILED, now)
            _record_status(db, run_id, attempt + 1, RunStatus.QUEUED, now)
            return attempt + 1

    def waiting_secret_variables(self) -> set[str]:
        """The environment variables the secret references of unfinished runs name."""
        marks = ",".join("?" * len(TERMINAL))
        with self.read() as db:
            rows = db.execute(
                f"SELECT launch_plan FROM runs WHERE status NOT IN ({marks})",
                [s.value for s in TERMINAL],
            ).fetchall()
        return {name for row in rows for name in _secret_variables(row[0])}

    def requeue(self, run_id: str, launcher: tuple[int, str] | None = None) -> None:
        """Lets go of a Queued run: no process holds it, the next free slot is its.

        `launcher` is the process that holds its secrets now (see `claim_slots`).
        """
        with self.write() as db:
            db.execute(
                "UPDATE runs SET supervisor_pid = NULL, supervisor_started = NULL, "
                "launcher_pid = ?, launcher_started = ? WHERE run_id = ? AND status = ?",
                (*(launcher or (None, None)), run_id, RunStatus.QUEUED.value),
            )

    def request_cancel(self, run_id: str) -> None:
        """Flags the run for its supervisor to cancel."""
        with self.write() as db:
            db.execute("UPDATE runs SET cancel_requested = 1 WHERE run_id = ?", (run_id,))

    def cancel(self, run_id: str) -> bool:
        """Cancels a run: Canceled at once if it never started, else asked of its supervisor.

        Returns:
            Whether it was Canceled at once (its page is then the caller's to rewrite).
        """
        self.request_cancel(run_id)
        queued = (RunStatus.NOT_STARTED, RunStatus.QUEUED)
        if self.move(run_id, RunStatus.CANCELED, only_from=queued,
                     failure_kind=FailureKind.CANCELED.value, error="canceled"):  # fmt: skip
            return True
        self.move(run_id, RunStatus.CANCEL_REQUESTED)
        return False

    def attempts(self, run_id: str) -> list[sqlite3.Row]:
        """Returns the run's attempts, first to last."""
        with self.read() as db:
            return db.execute(
                "SELECT * FROM attempts WHERE run_id = ? ORDER BY attempt", (run_id,)
            ).fetchall()

    def status_events(self, run_id: str) -> list[sqlite3.Row]:
        """Returns every status the run went through: attempt, status, time; in order."""
        with self.read() as db:
            return db.execute(
                "SELECT attempt, status, time FROM status_events WHERE run_id = ? ORDER BY rowid",
                (run_id,),
            ).fetchall()

    # ---- metrics --------------------------------------------------------------------------

    def log_metrics(
        self, run_id: str, attempt: int, values: list[tuple[str, float | str, int | None]]
    ) -> None:
        """Records metric values for a run attempt: numbers, and text in a table of its own."""
        now = time.time()
        # SQLite stores a NaN as NULL, which the REAL column refuses: it is kept as the text
        # 'NaN', which that column keeps as text, and `LocalBackend.get_metrics` reads as a
        # float again (a training's loss can be NaN; logging it must not fail the job).
        numbers = [
            (n, "NaN" if math.isnan(v) else v, s) for n, v, s in values if not isinstance(v, str)
        ]
        texts = [(n, v, s) for n, v, s in values if isinstance(v, str)]
        with self.write() as db:
            for table, rows in (("metrics", numbers), ("text_metrics", texts)):
                db.executemany(
                    f"INSERT INTO {table} (run_id, attempt, name, value, step, time) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    [(run_id, attempt, name, value, step, now) for name, value, step in rows],
                )

    def metrics(self, run_id: str) -> list[sqlite3.Row]:
        """Returns every metric value of the run, numbers and text, in the order logged."""
        columns = "attempt, name, value, step, time, rowid AS seq"
        with self.read() as db:
            return db.execute(
                f"SELECT {columns}, 0 AS kind FROM metrics WHERE run_id = ? UNION ALL "
                f"SELECT {columns}, 1 AS kind FROM text_metrics WHERE run_id = ? "
                "ORDER BY time, kind, seq",
                (run_id, run_id),
            ).fetchall()

    def metric_count(self, run_id: str) -> int:
        """How many metric values (numbers and text) the run logged: values are only added."""
        with self.read() as db:
            row = db.execute(
                "SELECT (SELECT count(*) FROM metrics WHERE run_id = ?) "
                "+ (SELECT count(*) FROM text_metrics WHERE run_id = ?)",
                (run_id, run_id),
            ).fetchone()
        return int(row[0])

    def metric_values(self, run_id: str) -> list[Metric]:
        """Every metric value of the run as `Metric`s, in the order logged, with its attempt."""
        return [
            Metric(
                name=row["name"],
                # kind 1 is a text metric; a number is a float, a NaN among them the text 'NaN'.
                value=row["value"] if row["kind"] == 1 else float(row["value"]),
                step=row["step"],
                time=datetime.datetime.fromtimestamp(row["time"], datetime.UTC),
                attempt=int(row["attempt"]),
            )
            for row in self.metrics(run_id)
        ]

    # ---- clusters -------------------------------------------------------------------------

    def put_cluster(
        self, name: str, max_concurrent_runs: int, preemption: dict[str, Any] | None
    ) -> None:
        """Creates or updates a compute cluster."""
        with self.write() as db:
            db.execute(
                "INSERT INTO clusters (name, max_concurrent_runs, preemption) VALUES (?, ?, ?) "
                "ON CONFLICT(name) DO UPDATE SET max_concurrent_runs = excluded."
                "max_concurrent_runs, preemption = excluded.preemption",
                (name, max_concurrent_runs, json.dumps(preemption) if preemption else None),
            )

    def clusters(self) -> dict[str, tuple[int, dict[str, Any] | None]]:
        """Returns {name: (max_concurrent_runs, preemption settings or None)}."""
        with self.read() as db:
            rows = db.execute("SELECT * FROM clusters").fetchall()
        return {
            row["name"]: (
                int(row["max_concurrent_runs"]),
                json.loads(row["preemption"]) if row["preemption"] else None,
            )
            for row in rows
        }

    # ---- datasets -------------------------------------------------------------------------

    def add_dataset_version(
        self,
        name: str,
        datastore: str,
        path: str,
        created_by_run: str | None,
        *,
        only_if_new: bool = False,
    ) -> int | None:
        """Registers the next version of a dataset; returns its number.

        With `only_if_new`, registers version 1 only when the dataset has no version yet (a
        concurrent creator wins) and returns None otherwise.
        """
        with self.write() as db:
            latest = db.execute(
                "SELECT MAX(version) FROM datasets WHERE name = ?", (name,)
            ).fetchone()[0]
            if only_if_new and latest is not None:
                return None
            version = (latest or 0) + 1
            db.execute(
                "INSERT INTO datasets (name, version, datastore, path, created_by_run, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (name, version, datastore, path, created_by_run, time.time()),
            )
            return int(version)

    def add_run_outputs(self, outputs: list[tuple[str, str, str, str | None]], run_id: str) -> None:
        """Registers the next version of each output a run made: all or none.

        Each output is (dataset, datastore, path, digest of its files or None). One
        transaction: a process killed midway registers none of them, never some.
        """
        with self.write() as db:
            now = time.time()
            for name, datastore, path, digest in outputs:
                latest = db.execute(
                    "SELECT MAX(version) FROM datasets WHERE name = ?", (name,)
                ).fetchone()[0]
                db.execute(
                    "INSERT INTO datasets (name, version, datastore, path, created_by_run, "
                    "created_at, content_digest) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (name, (latest or 0) + 1, datastore, path, run_id, now, digest),
                )

    def dataset_versions(self, name: str) -> list[sqlite3.Row]:
        """Returns the dataset's versions, oldest first."""
        with self.read() as db:
            return db.execute(
                "SELECT * FROM datasets WHERE name = ? ORDER BY version", (name,)
            ).fetchall()

    def preemptions_on(self, compute: str) -> int:
        """How many attempts of runs on a cluster were preempted."""
        with self.read() as db:
            return int(
                db.execute(
                    "SELECT COUNT(*) FROM attempts JOIN runs USING (run_id) "
                    "WHERE runs.compute = ? AND attempts.failure_kind = 'preempted'",
                    (compute,),
                ).fetchone()[0]
            )

    def datasets_created_by(self, run_id: str) -> list[sqlite3.Row]:
        """Returns the dataset versions a run registered, in order."""
        with self.read() as db:
            return db.execute(
                "SELECT * FROM datasets WHERE created_by_run = ? ORDER BY created_at, name",
                (run_id,),
            ).fetchall()

    def dataset_version(self, name: str, version: int) -> sqlite3.Row | None:
        """Returns one version of a dataset, or None if the registry has no such version."""
        with self.read() as db:
            return db.execute(  # type: ignore[no-any-return]
                "SELECT * FROM datasets WHERE name = ? AND version = ?", (name, version)
            ).fetchone()

    def dataset_names(self) -> list[str]:
        """Returns the names of all datasets."""
        with self.read() as db:
            return [r[0] for r in db.execute("SELECT DISTINCT name FROM datasets ORDER BY name")]

    # ---- datastores -----------------------------------------------------------------------

    def put_datastore(self, name: str, settings: dict[str, Any]) -> None:
        """Creates or replaces a datastore's settings (never secrets, only where to find them)."""
        with self.write() as db:
            db.execute(
                "INSERT INTO datastores (name, settings) VALUES (?, ?) "
                "ON CONFLICT(name) DO UPDATE SET settings = excluded.settings",
                (name, json.dumps(settings)),
            )

    def datastores(self) -> dict[str, dict[str, Any]]:
        """Returns {name: settings} of the registered datastores."""
        with self.read() as db:
            rows = db.execute("SELECT * FROM datastores").fetchall()
        return {row["name"]: json.loads(row["settings"]) for row in rows}


def _slots_held(db: sqlite3.Connection, compute: str) -> int:
    """How many of the cluster's slots its runs hold now."""
    holding = ",".join("?" * len(SLOT_HOLDING))
    return int(
        db.execute(
            f"SELECT COUNT(*) FROM runs WHERE compute = ? AND status IN ({holding})",
            (compute, *[s.value for s in SLOT_HOLDING]),
        ).fetchone()[0]
    )


def _still_reusable(db: sqlite3.Connection, run_id: str, outputs: int) -> bool:
    """Whether the run is Completed and still has the dataset versions it registered."""
    row = db.execute(
        "SELECT (SELECT status FROM runs WHERE run_id = ?), "
        "(SELECT COUNT(*) FROM datasets WHERE created_by_run = ?)",
        (run_id, run_id),
    ).fetchone()
    return row[0] == RunStatus.COMPLETED.value and int(row[1]) == outputs


def _record_status(
    db: sqlite3.Connection, run_id: str, attempt: int, status: RunStatus, when: float
) -> None:
    db.execute(
        "INSERT INTO status_events (run_id, attempt, status, time) VALUES (?, ?, ?, ?)",
        (run_id, attempt, status.value, when),
    )


def _run_row(row: sqlite3.Row) -> RunRow:
    return RunRow(
        run_id=row["run_id"],
        experiment=row["experiment"],
        display_name=row["display_name"],
        parent_run_id=row["parent_run_id"],
        compute=row["compute"],
        priority=row["priority"],
        status=RunStatus(row["status"]),
        attempt=int(row["attempt"]),
        failure_kind=row["failure_kind"],
        error=row["error"],
        exit_code=row["exit_code"],
        cancel_requested=bool(row["cancel_requested"]),
        tags=json.loads(row["tags"]),
        parameters=json.loads(row["parameters"]),
        launch_plan_json=row["launch_plan"],
        run_dir=Path(row["run_dir"]),
        supervisor_pid=row["supervisor_pid"],
        supervisor_started=row["supervisor_started"],
        job_group=row["job_group"],
        submission_id=row["submission_id"],
        launcher_pid=row["launcher_pid"],
        launcher_started=row["launcher_started"],
        created_at=float(row["created_at"]),
        started_at=row["started_at"],
        ended_at=row["ended_at"],
        step_identity=row["step_identity"],
        reused_from=row["reused_from"],
    )


def _secret_variables(launch_plan: str) -> set[str]:
    """The variables a run's secret references name, read from its stored launch plan.

    A damaged plan (not JSON, not an object, ...) names none, rather than failing the query
    for every run: its supervisor refuses it and fails that run alone, saying why.
    """
    try:
        names = json.loads(launch_plan).get("secret_variables") or {}
        return {str(value) for value in names.values()}
    except (ValueError, TypeError, AttributeError):
        return set()
