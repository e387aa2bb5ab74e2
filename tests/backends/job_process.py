"""A job's process on a stand-in's compute: what AzureML's compute does alike in SDK v1 and v2.

Both AzureML stand-ins (tests/backends/azureml_execution.py for v1, azureml_v2_execution.py for
v2) run a submitted job as a real subprocess through this class:
- the job's snapshot is copied into a fresh working folder, the process's current folder
  ("Where to save and write files", Azure Machine Learning docs), with `outputs/` and `logs/`
  made before it starts (hi-ml's example 3 writes outputs/primes.txt at once);
- the process is its own process group with stdout and stderr in one log, unbuffered, so that
  the log grows as the job prints (AzureML streams it while the job runs);
- the job's time limit ends it (v1: `max_run_duration_seconds`; v2: `limits.timeout`), as does
  a cancel: SIGTERM to the whole group, then SIGKILL after a grace period;
- a low-priority node taken back (`Preemption`, a test's rule) kills the job's process, and
  the service ends the job Failed with AzureML's PreemptionError (each stand-in's
  PREEMPTION_ERROR).
"""

from __future__ import annotations

import datetime
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

DEFAULT_DEADLINE_SECONDS = 60.0  # a job without a time limit still ends
KILL_GRACE_SECONDS = 5.0
_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Interrupt|Exit)\b.*")


@dataclass
class Preemption:
    """When a stand-in takes a running job's nodes back (low priority compute).

    Attributes:
        script: The entry script of the jobs it preempts (as submitted).
        after_metric: Preempts once the job has logged this many values of this metric
            (as a watcher would see them).
        max_preemptions: How many jobs it preempts in all.
    """

    script: str
    after_metric: tuple[str, int]
    max_preemptions: int = 1


def preemption_fires(
    rules: Iterable[Preemption],
    script: str,
    preempted: Sequence[str],
    logged: Callable[[str], int],
) -> bool:
    """True when a rule takes back the running job of `script` now.

    Args:
        rules: The service's preemption rules.
        script: The running job's entry script.
        preempted: The entry script of every job preempted so far (each rule fires a set
            number of times).
        logged: How many values of a metric the running job has logged.
    """
    for rule in rules:
        if script != rule.script or preempted.count(rule.script) >= rule.max_preemptions:
            continue
        name, count = rule.after_metric
        if logged(name) >= count:
            return True
    return False


def utc_now() -> str:
    """A time as the service writes it in a run's details."""
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def copy_files(root: Path, names: Sequence[str], target: Path) -> None:
    """Copies the files `names` (relative to `root`) to the same paths under `target`."""
    for name in names:
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / name, target / name)


def has_files(folder: Path) -> bool:
    """True if `folder` holds at least one file (at any depth)."""
    return folder.is_dir() and any(p.is_file() for p in folder.rglob("*"))


class JobProcess:
    """One job's process and the folders around it, under `folder`."""

    def __init__(self, folder: Path, snapshot_root: Path, snapshot: Sequence[str]) -> None:
        self.folder = folder
        self.working_folder = folder / "wd"
        self.log_file = folder / "driver.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.started_at = ""
        self.deadline = 0.0
        self.timed_out = False
        self.uploaded_log_size = -1
        copy_files(snapshot_root, snapshot, self.working_folder)
        for name in ("outputs", "logs"):
            (self.working_folder / name).mkdir(parents=True, exist_ok=True)

    def launch(
        self, command: Sequence[str], environment: Mapping[str, str], limit_seconds: float | None
    ) -> None:
        """Starts the process in the working folder; it is stopped after `limit_seconds`."""
        with self.log_file.open("wb") as log:
            self.process = subprocess.Popen(
                list(command),
                cwd=self.working_folder,
                env={**environment, "PYTHONUNBUFFERED": "1"},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: a cancel ends all of it
            )
        self.started_at = utc_now()
        self.deadline = time.monotonic() + float(limit_seconds or DEFAULT_DEADLINE_SECONDS)

    @property
    def alive(self) -> bool:
        """True while the process runs; past its deadline it is stopped here."""
        if self.process is None or self.process.poll() is not None:
            return False
        if time.monotonic() > self.deadline:
            self.timed_out = True
            self.kill()
            return False
        return True

    @property
    def return_code(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def grown_log(self) -> bytes | None:
        """The whole log when it grew since the last call, else None."""
        # Called at every poll: the file is read only when its size says it grew.
        size = self.log_file.stat().st_size if self.log_file.exists() else 0
        if size == self.uploaded_log_size:
            return None
        data = self.log_file.read_bytes() if size else b""
        self.uploaded_log_size = len(data)
        return data

    def kill(self) -> None:
        """Ends the process group: SIGTERM, then SIGKILL after a grace period."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(process.pid, sig)
            except ProcessLookupError:
                return
            try:
                process.wait(timeout=KILL_GRACE_SECONDS)
                return
            except subprocess.TimeoutExpired:
                continue

    def exit_message(self) -> str:
        """The service's words for a script that exited with an error, naming the exception."""
        text = self.log_file.read_text(encoding="utf-8", errors="replace")
        found = [line for line in text.splitlines() if _EXCEPTION_LINE.match(line)]
        message = (
            f"Execution failed. User process 'python' exited with status code "
            f"{self.return_code}. Please check log file 'user_logs/std_log.txt' for error "
            "details."
        )
        if found:
            message += f" Error: {found[-1]}"
        return message


def inherited_environment() -> dict[str, str]:
    """This process's variables a compute node would have too: none of himl-tasks' or AzureML's."""
    prefixes = ("HIML_", "AZUREML_", "AZURE_ML_", "MLFLOW_")
    return {name: value for name, value in os.environ.items() if not name.startswith(prefixes)}
