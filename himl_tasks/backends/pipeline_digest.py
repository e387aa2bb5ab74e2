"""The content digest of a pipeline: what publishing compares, wherever the project is.

Publishing an unchanged pipeline gives its latest published version again; a changed one the
next version. "Unchanged" is a matter of content: the pipeline's settings, each step's job,
and each step's snapshot content. Where the project's folder is (another checkout, another
machine) is not part of it, so the paths a job holds are taken relative to its snapshot root,
and the files it names outside the snapshot (its conda file, its private wheel) by content.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from himl_tasks.pipelines import PipelineSpec
from himl_tasks.snapshot import Snapshot

# JobSpec's fields naming a file that the job's environment is made of.
_ENVIRONMENT_FILES = ("conda_environment_file", "private_pip_wheel_path")


def pipeline_content_digest(pipeline: PipelineSpec, snapshots: Mapping[str, Snapshot]) -> str:
    """A digest of what the pipeline runs: equal for an unchanged pipeline, wherever it is.

    Args:
        pipeline: The pipeline.
        snapshots: Each step's snapshot (as selected for publishing), by step name.

    Raises:
        InputPathNotFoundError: A snapshot file is gone since it was selected.
        InvalidInputError: A step's entry script is not in its snapshot.
    """
    fields = json.loads(pipeline.to_json())
    for step in fields["steps"]:
        job: dict[str, Any] = step["job"]
        snapshot = snapshots[step["name"]]
        job["snapshot_root"] = None
        if job["entry_script"] is not None:
            job["entry_script"] = snapshot.entry_script(Path(job["entry_script"]))
        for name in _ENVIRONMENT_FILES:
            if job.get(name) is not None:
                job[name] = _file_digest(Path(job[name]))
        step["snapshot"] = snapshot.content_digest()
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()


def _file_digest(path: Path) -> str:
    """A file's content digest; a file that is not there (yet) by its name."""
    if not path.is_file():
        return f"missing:{path.name}"
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
