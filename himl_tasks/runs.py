"""Runs as every backend describes them: references, statuses, states and metrics."""

from __future__ import annotations

import datetime
import enum
import logging
import os
import re
import stat
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from himl_tasks.errors import (
    ConfigurationError,
    ContainerNotFoundError,
    InvalidInputError,
    RunNotFoundError,
    StorageAccessError,
)

logger = logging.getLogger(__name__)

RUN_RECOVERY_FILE = "most_recent_run.txt"


class RunStatus(enum.StrEnum):
    """A run's lifecycle status, with AzureML's names."""

    NOT_STARTED = "NotStarted"
    QUEUED = "Queued"
    PREPARING = "Preparing"
    RUNNING = "Running"
    FINALIZING = "Finalizing"
    CANCEL_REQUESTED = "CancelRequested"
    COMPLETED = "Completed"
    FAILED = "Failed"
    CANCELED = "Canceled"
    NOT_RESPONDING = "NotResponding"

    @property
    def is_terminal(self) -> bool:
        """True once the run will not change any more."""
        return self in _TERMINAL


_TERMINAL = frozenset(
    {RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELED, RunStatus.NOT_RESPONDING}
)


class FailureKind(enum.StrEnum):
    """Why a run did not complete; decides whether retrying can help.

    `configuration` is a setting outside the job's code that the platform could not work
    with: credentials refused (authentication) or lacking a permission (authorisation), a
    datastore or container that does not exist. Like `user_error` it is never retried: the
    same settings fail again. Unlike it, the fix is in the workspace, not in the script.
    """

    USER_ERROR = "user_error"
    PREEMPTED = "preempted"
    INFRASTRUCTURE = "infrastructure"
    CANCELED = "canceled"
    TIMEOUT = "timeout"
    CONFIGURATION = "configuration"


# The failure kinds of a run the platform lost, not the job's code: submitting the job again,
# resuming from its latest recovery checkpoint, may well complete it.
RESUBMITTABLE = frozenset({FailureKind.PREEMPTED, FailureKind.INFRASTRUCTURE})


CONFIGURATION_HINT = (
    "This is a configuration error, not a passing fault: submitting the job again will fail "
    "the same way until the datastore's credential, permissions or settings are fixed."
)


def platform_failure_kind(error: BaseException) -> FailureKind:
    """The failure kind of an error the platform met around a job (staging data, publishing).

    Refused or insufficient credentials and missing datastores or containers are
    `configuration`; what the spec asked that cannot be done (`InvalidInputError`, e.g. a
    target_folder that holds the user's files, or names this file system cannot hold)
    `user_error`; anything else (timeouts, service errors after retries) `infrastructure`.
    Only the last is worth submitting again.
    """
    refused = (StorageAccessError, ContainerNotFoundError, ConfigurationError)
    if isinstance(error, refused):
        return FailureKind.CONFIGURATION
    if isinstance(error, InvalidInputError):
        return FailureKind.USER_ERROR
    return FailureKind.INFRASTRUCTURE


@dataclass(frozen=True)
class RunRef:
    """Names one run: the backend's name, the experiment and the run id.

    Its text form, `experiment:run_id`, is hi-ml's run recovery id. `portal_url`, where a
    person can look at the run (AzureML Studio, or the local run folder), is not part of its
    identity.
    """

    experiment: str
    run_id: str
    backend: str = "local"
    portal_url: str = field(default="", compare=False)

    @property
    def recovery_id(self) -> str:
        """`experiment:run_id`."""
        return f"{self.experiment}:{self.run_id}"

    def __str__(self) -> str:
        return self.recovery_id


def parse_recovery_id(recovery_id: str) -> tuple[str, str]:
    """Reads `experiment:run_id`, or a bare run id of any form, as (experiment, run_id).

    What backends look runs up by: a bare id gives an empty experiment (the run id alone names
    the run), whatever its form (AzureML's HyperDrive children, `HD_<uuid>_3`, included).
    `split_recovery_id` is hi-ml's stricter reading, which guesses the experiment.

    Raises:
        InvalidInputError: If the id is no text, is empty or has more than one colon.
    """
    _refuse_non_text(recovery_id)
    text = recovery_id.strip()
    parts = text.split(":")
    if not text or len(parts) > 2 or not parts[-1]:
        raise InvalidInputError(
            f"'{recovery_id}' is not a run recovery id; expected 'experiment:run_id' or 'run_id'"
        )
    return (parts[0], parts[1]) if len(parts) == 2 else ("", parts[0])


def _refuse_non_text(recovery_id: object) -> None:
    # Else an AttributeError from .strip(), far from the caller's argument.
    if not isinstance(recovery_id, str):
        raise InvalidInputError(
            f"a run recovery id is text, 'experiment:run_id' or 'run_id', not "
            f"{type(recovery_id).__name__} ({recovery_id!r})"
        )


# hi-ml's pattern for a bare run id: `<experiment>_<number>_<hex>` or `<experiment>_<number>`
# (health_azure/utils.py, split_recovery_id); the experiment is the part before them.
# `\Z`, not `$`: `$` also matches before a final newline, which would end up in the run id.
_BARE_RUN_ID = re.compile(r"^(\w+)_\d+_[0-9a-f]+\Z|^(\w+)_\d+\Z")


def split_recovery_id(id_str: str) -> tuple[str, str]:
    """Splits a run recovery id into (experiment, run_id), as hi-ml does.

    `experiment:run_id` gives its two parts. A bare run id of the form hi-ml knows,
    `<experiment>_<number>_<hex>` or `<experiment>_<number>` (AzureML's and the local backend's
    run ids), gives the experiment guessed from it and the whole id:
    `split_recovery_id("train_1612345678_ab12cd") == ("train", "train_1612345678_ab12cd")`.

    Raises:
        InvalidInputError: (a ValueError, as hi-ml raises) If there is more than one colon,
            nothing after the colon, or a bare id is not of that form (a UUID, say): pass
            `experiment:run_id` then; if it is no text.
    """
    _refuse_non_text(id_str)
    components = id_str.strip().split(":")
    if len(components) > 2:
        raise InvalidInputError(
            f"recovery_id must be in the format 'experiment_name:run_id', but got: {id_str}"
        )
    if len(components) == 2:
        if not components[1]:
            # hi-ml returns ("exp", ""), and every look-up with it fails later, far from here.
            raise InvalidInputError(
                f"The recovery ID {id_str!r} names no run after the colon: expected "
                "'experiment_name:run_id'"
            )
        return components[0], components[1]
    match = _BARE_RUN_ID.match(id_str)
    if match is None:
        raise InvalidInputError(
            f"The recovery ID was not in the expected format: {id_str} (expected "
            "'experiment_name:run_id', or a run id '<experiment>_<number>[_<hex>]')"
        )
    return match.group(1) or match.group(2), id_str


def write_most_recent_run(folder: Path, ref: RunRef) -> Path | None:
    """Writes the run's recovery id to `most_recent_run.txt` in `folder`; returns the file.

    It is written once the run is submitted: a folder that refuses the file (read-only, a
    folder of that name) is a warning that names the id, and None is returned. Raising would
    hide the id of a run that exists, and a user who sees no run submits it again.
    """
    path = folder / RUN_RECOVERY_FILE
    # Written beside it, then renamed over it: a reader, or a submitter killed while writing,
    # finds the previous id or the new one, never a half-written or empty file.
    partial = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.partial")
    try:
        partial.write_text(ref.recovery_id + "\n", encoding="utf-8")
        partial.replace(path)
    except OSError as error:
        logger.warning(
            "run %s is submitted, but its recovery id could not be written to %s (%s: %s)",
            ref.recovery_id,
            path,
            type(error).__name__,
            error,
        )
        return None
    finally:
        partial.unlink(missing_ok=True)
    return path


MAX_RECOVERY_FILE_BYTES = 4096
"""More than any recovery id: a bigger file is some other file."""


def read_most_recent_run(run_recovery_file: str | os.PathLike[str] = RUN_RECOVERY_FILE) -> str:
    """Reads the recovery id written by the last submission.

    Raises:
        RunNotFoundError: If the file does not exist or is empty.
        InvalidInputError: If it cannot be read, or is no file of text (a folder, a fifo, a
            device, bytes that are no UTF-8 text, more than `MAX_RECOVERY_FILE_BYTES`), or no
            path was given.
    """
    if not isinstance(run_recovery_file, str | os.PathLike):
        raise InvalidInputError(
            f"a most_recent_run.txt is named by a str or path, not "
            f"{type(run_recovery_file).__name__}"
        )
    path = Path(run_recovery_file)
    not_one = f"{path} is not a {RUN_RECOVERY_FILE} (a submission writes one recovery id there)"
    try:
        # Without O_NONBLOCK a fifo put there would wait for a writer for ever.
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise RunNotFoundError(
            f"{path} does not exist: no run was submitted from here yet"
        ) from None
    except OSError as error:  # not readable, a name too long, a file where a folder should be
        raise InvalidInputError(f"{path} cannot be read: {error.strerror}") from None
    if not stat.S_ISREG(os.fstat(descriptor).st_mode):
        os.close(descriptor)
        raise InvalidInputError(f"{not_one}: it is a folder, fifo or device, not a file")
    with os.fdopen(descriptor, "rb") as file:
        data = file.read(MAX_RECOVERY_FILE_BYTES + 1)  # a bound: a huge file is not read whole
    if len(data) > MAX_RECOVERY_FILE_BYTES:
        raise InvalidInputError(f"{not_one}: it holds over {MAX_RECOVERY_FILE_BYTES} bytes")
    try:
        text = data.decode("utf-8-sig").strip()  # a BOM too, as Windows editors save it
    except UnicodeDecodeError:
        raise InvalidInputError(f"{not_one}: it holds bytes that are no UTF-8 text") from None
    if not text:
        raise RunNotFoundError(f"{path} is empty: it holds no run recovery id")
    return text


@dataclass(frozen=True)
class RunState:
    """Where a run is now.

    Attributes:
        ref: The run.
        status: Its status.
        failure_kind: Why it did not complete (terminal non-Completed states only).
        error: The error text (for a failed run, the tail of its log or the platform's error).
        attempt: 1 for the first attempt; the platform's restarts count up.
        created_at: When it was submitted.
        started_at: When its processes started (latest attempt).
        ended_at: When it reached a terminal status.
        exit_code: The exit code of the job's main process, once known.
        portal_url: Where a person can look at the run.
    """

    ref: RunRef
    status: RunStatus
    failure_kind: FailureKind | None = None
    error: str = ""
    attempt: int = 1
    created_at: datetime.datetime | None = None
    started_at: datetime.datetime | None = None
    ended_at: datetime.datetime | None = None
    exit_code: int | None = None
    portal_url: str = ""

    @property
    def is_terminal(self) -> bool:
        """True once the run will not change any more."""
        return self.status.is_terminal

    @property
    def succeeded(self) -> bool:
        """True only for Completed."""
        return self.status is RunStatus.COMPLETED


@dataclass(frozen=True)
class ListedRun:
    """A run as a workspace lists it: its state, and what a person finds it by.

    Attributes:
        state: Where the run is now (its `ref`, status, failure kind, attempt, times, portal URL).
        display_name: The name the run is shown under.
        tags: The run's tags.
        parent_run_id: The run it is a child of (a sweep's trial), or None.
    """

    state: RunState
    display_name: str = ""
    tags: Mapping[str, str] = field(default_factory=dict)
    parent_run_id: str | None = None

    @property
    def ref(self) -> RunRef:
        """The run."""
        return self.state.ref


@dataclass(frozen=True)
class Metric:
    """One logged value of a metric.

    Attributes:
        name: The metric's name.
        value: The value logged: a number, or the text a script logged (hi-ml's hyperparameter
            table, a note), kept as text because AzureML keeps it so.
        step: The step (epoch, iteration) it belongs to, if given.
        time: When it was logged.
        attempt: The run attempt that logged it.
    """

    name: str
    value: float | str
    step: int | None
    time: datetime.datetime
    attempt: int = 1
