"""Processes of local runs: telling whether one still lives, and ending a process group."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

# Variables a job inherits from the platform; everything else it gets is set explicitly, so
# secrets in the submitter's environment (keys, tokens) never reach a job.
INHERITED_VARIABLES = (
    "PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ", "TMPDIR", "TERM", "SHELL",
    "VIRTUAL_ENV", "CONDA_PREFIX", "LD_LIBRARY_PATH", "CUDA_VISIBLE_DEVICES", "OMP_NUM_THREADS",
)  # fmt: skip

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
PR_SET_DUMPABLE = 4


def process_start_marker(pid: int) -> str:
    """Returns what tells this process apart from a later one given the same pid.

    On Linux that is the start time in clock ticks from `/proc/<pid>/stat`; "" when unknown.
    """
    fields = _stat_fields(pid)
    return fields[19] if fields is not None and len(fields) > 19 else ""


def is_alive(pid: int, marker: str) -> bool:
    """Tells whether the process `pid` that had start marker `marker` still runs (not a zombie)."""
    fields = _stat_fields(pid)
    if fields is None or fields[0] in ("Z", "X"):
        return False
    return not marker or (len(fields) > 19 and fields[19] == marker)


def _stat_fields(pid: int) -> list[str] | None:
    """The fields of `/proc/<pid>/stat` after the command name (state first), or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its last ')'.
    return stat[stat.rindex(")") + 2 :].split()


def end_process_group(
    processes: list[subprocess.Popen[bytes]], *, grace_seconds: float, kill_at_once: bool = False
) -> None:
    """Ends every process of the group the first process leads, and reaps them.

    SIGTERM first, so jobs can clean up, then SIGKILL after `grace_seconds`; with `kill_at_once`
    SIGKILL straight away (a preempted machine gives no warning).
    """
    if not processes:
        return
    group = processes[0].pid
    _signal_group(group, signal.SIGKILL if kill_at_once else signal.SIGTERM)
    deadline = time.monotonic() + (0 if kill_at_once else grace_seconds)
    for process in processes:
        try:
            process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            break
    _signal_group(group, signal.SIGKILL)
    for process in processes:
        process.wait()


def _signal_group(group: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, signum)


def dying_with_this_process() -> Callable[[], None]:
    """A `preexec_fn` making the child get SIGKILL when this process ends, however it ends.

    A supervisor records its job's process group only after starting it: killed in between, it
    would leave a job nobody can find running on. With this, the kernel ends the job's first
    process with its supervisor (Linux `PR_SET_PDEATHSIG`; elsewhere nothing changes).
    """
    parent = os.getpid()
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        prctl = None

    def set_up() -> None:
        if prctl is not None:
            prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # the parent ended before the request was made
            os.kill(os.getpid(), signal.SIGKILL)

    return set_up


def refuse_inspection() -> None:
    """Makes this process's memory and `/proc` entries unreadable to other processes of its user.

    A supervisor holds datastore keys, and its jobs run as the same user: without this, a job
    could read them from `/proc/<ppid>/mem` (Linux `PR_SET_DUMPABLE` 0; the flag is not
    inherited across exec, so the jobs themselves stay debuggable). Elsewhere nothing changes.
    """
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_DUMPABLE, 0)
