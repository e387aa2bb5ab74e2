"""The snapshot's `.amlignore`, written for one submission and put back after it.

Both SDKs take the files of a job's snapshot by the `.amlignore` in its root, so the rules of
`select_snapshot` are written there while the job is submitted.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path

from himl_tasks.snapshot import IGNORE_FILE

BACKUP_SUFFIX = ".himl-original"
_HEADER = (
    "# Written by himl-tasks for one submission; your own .amlignore (if any) is put back\n"
    "# when the submission ends.\n"
)


@contextlib.contextmanager
def amlignore_for_submission(root: Path, rules: Sequence[str]) -> Iterator[Path]:
    """Makes `root/.amlignore` hold `rules` while the snapshot is taken, then restores it.

    The user's file comes back byte for byte with its permissions, or is removed again if
    there was none, also when the submission fails. A copy is kept beside it meanwhile, so a
    submission killed half-way is repaired by the next one.
    """
    path = root / IGNORE_FILE
    backup = root / (IGNORE_FILE + BACKUP_SUFFIX)
    if backup.exists():  # an earlier submission died before it could restore the file
        backup.replace(path)
    original = path.read_bytes() if path.exists() else None
    if original is not None:
        mode = path.stat().st_mode
        backup.write_bytes(original)
        backup.chmod(mode)
    lines = [*rules, f"/{IGNORE_FILE}{BACKUP_SUFFIX}"]
    path.write_text(_HEADER + "\n".join(lines) + "\n", encoding="utf-8")
    try:
        yield path
    finally:
        if original is None:
            path.unlink(missing_ok=True)
        else:
            backup.replace(path)
