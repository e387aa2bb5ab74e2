"""Recovery checkpoints: where a job keeps them, how they are named, and which is the latest.

A job that may be preempted saves recovery checkpoints as it goes; a job that resumes a run (or
is restarted) picks up from the latest one. Recovery checkpoints are files whose names start with
`recovery` and contain the epoch number, e.g. `recovery_epoch=12.ckpt` (hi-ml's and PyTorch
Lightning's naming).

This module only reads a folder: the in-job API (`himl_tasks.runtime`) and the platform side
(a backend restoring a resumed run's checkpoint) both use it.
"""

from __future__ import annotations

import re
from pathlib import Path

RECOVERY_CHECKPOINT_PREFIX = "recovery"
DEFAULT_CHECKPOINT_FOLDER = "outputs/checkpoints"

# A file still being written, e.g. by a job preempted half-way through saving, or by a download.
PARTIAL_SUFFIXES = (".tmp", ".partial", ".himl-partial")
_NUMBER = re.compile(r"\d+")


def latest_recovery_checkpoint(folder: Path | str) -> Path | None:
    """The recovery checkpoint with the highest epoch number in `folder`, or None.

    Nothing is fetched: only files already in the folder count. Files whose names end in a
    temporary suffix (a checkpoint still being written) and names without a number are skipped;
    a missing folder has none.
    """
    directory = Path(folder)
    if not directory.is_dir():
        return None
    candidates: list[tuple[int, Path]] = []
    for path in directory.iterdir():
        if not path.is_file() or not path.name.startswith(RECOVERY_CHECKPOINT_PREFIX):
            continue
        if path.name.endswith(PARTIAL_SUFFIXES):
            continue
        numbers = _NUMBER.findall(path.stem)
        if numbers:
            candidates.append((int(numbers[0]), path))
    return max(candidates)[1] if candidates else None
