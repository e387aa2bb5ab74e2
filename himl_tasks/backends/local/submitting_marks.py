"""The mark a submitter leaves in a run's folder until the run is recorded.

A submitter copies the snapshot into the run's folder before it records the run: killed in
between, it leaves a folder no run owns. The mark names the submitting process, so the next
submission can tell such a folder (its submitter dead) from one still being made.
"""

from __future__ import annotations

from pathlib import Path

from himl_tasks.backends.local.launcher import this_launcher
from himl_tasks.backends.local.processes import is_alive

SUBMITTING = ".submitting"


def mark_submitting(run_dir: Path) -> None:
    """Says this process is making `run_dir` (pid and start marker)."""
    (run_dir / SUBMITTING).write_text(" ".join(map(str, this_launcher())), encoding="utf-8")


def unmark_submitting(run_dir: Path) -> None:
    """Removes the mark: the run is recorded (or its folder is being removed)."""
    (run_dir / SUBMITTING).unlink(missing_ok=True)


def abandoned_run_folders(runs_root: Path) -> list[Path]:
    """The run folders under `runs_root` whose mark names a process that has ended."""
    abandoned = []
    for mark in runs_root.glob(f"*/{SUBMITTING}"):
        try:
            pid, started = mark.read_text(encoding="utf-8").split(" ", 1)
        except (OSError, ValueError):
            continue  # being written: its submitter is alive
        if not is_alive(int(pid), started):
            abandoned.append(mark.parent)
    return abandoned
