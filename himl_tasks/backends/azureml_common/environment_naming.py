"""The conda file a job's environment is built from, and the name the built environment gets.

An environment built for a job is named `HIML-` and a hash of what decides its image, so an
unchanged environment is found and reused instead of being registered (and built) again.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from himl_tasks.backends.workspace_discovery import find_project_file

CONDA_FILE_NAME = "environment.yml"
ENVIRONMENT_NAME_PREFIX = "HIML-"


def find_conda_file(start: Path, python_path: str) -> Path | None:
    """`environment.yml` in `start` or its parents (up to the project root on PYTHONPATH)."""
    return find_project_file(CONDA_FILE_NAME, start, python_path)


def environment_name(conda_text: str, base_image: str, wheel_digest: str = "") -> str:
    """`HIML-` and a hash of what decides the environment's image."""
    digest = hashlib.sha256()
    for part in (conda_text, base_image, wheel_digest):
        digest.update(part.encode("utf-8"))
        digest.update(b"\0")
    return ENVIRONMENT_NAME_PREFIX + digest.hexdigest()[:32]
