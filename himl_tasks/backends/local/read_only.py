"""Making mounted input datasets read-only for a job's processes, where Linux allows it.

A job that reads a folder datastore's files in place must not change them. Each job process is
started in a mount namespace of its own (`unshare`), in which the in-place folders are bind
mounts of themselves, remounted read-only: the job's writes fail with "Read-only file system",
and nothing outside the job sees any change. Creating the namespace needs root or unprivileged
user namespaces; where neither is available the folders stay writable and the driver log says so.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

_SCRIPT = (
    'for folder in "$@"; do [ "$folder" = -- ] && break; '
    'mount --bind "$folder" "$folder" && mount -o remount,bind,ro "$folder" "$folder" || exit 97; '
    "done; "
    'while [ "$1" != -- ]; do shift; done; shift; exec "$@"'
)


@functools.cache
def read_only_mounts_available() -> bool:
    """Tells whether this machine lets a process make read-only bind mounts for itself."""
    if shutil.which("unshare") is None or shutil.which("mount") is None:
        return False
    with tempfile.TemporaryDirectory(prefix="himl-probe-") as probe:
        try:
            result = subprocess.run(
                [*_unshare(), "sh", "-c", _SCRIPT, "sh", probe, "--", "true"],
                capture_output=True,
                timeout=10,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired):
            return False
    return result.returncode == 0


def with_read_only_folders(command: list[str], folders: list[Path]) -> list[str]:
    """Wraps a command so that it sees `folders` read-only (see the module docstring)."""
    if not folders:
        return command
    return [*_unshare(), "sh", "-c", _SCRIPT, "sh", *map(str, folders), "--", *command]


def _unshare() -> list[str]:
    user = [] if os.geteuid() == 0 else ["--map-root-user"]
    return ["unshare", "--mount", "--propagation", "private", *user]
