"""A job's identity: what makes two submissions the same job.

Two submissions are the same job when their specs, the content of their snapshots and the
versions of their input datasets are the same. A flow re-run after a crash uses this to find
the run it already started, rather than submitting the job again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

from himl_tasks.job_spec import JobSpec
from himl_tasks.run_plan import RunPlan
from himl_tasks.snapshot import Snapshot


def job_identity(plan: RunPlan, *, workspace: str = "") -> str:
    """A hex digest naming the job: spec, snapshot content and input dataset versions.

    It reads only the plan (no backend is asked anything): the input versions are those the
    plan resolved, the snapshot the files it selected.

    Args:
        plan: The job, prepared by the backend it runs on.
        workspace: Names the workspace, so the same job in two workspaces differs.
    """
    digest = hashlib.sha256()
    digest.update(workspace.encode())
    digest.update(json.dumps(_spec_fields(plan.spec), sort_keys=True, default=str).encode())
    for resolved in plan.inputs:
        digest.update(f"\0input {resolved.name}:{resolved.version}".encode())
    digest.update(snapshot_digest(plan.snapshot).encode())
    return digest.hexdigest()


def snapshot_digest(snapshot: Snapshot) -> str:
    """A digest of the snapshot's file names and contents."""
    digest = hashlib.sha256()
    for item in snapshot.files:
        digest.update(item.relative.encode() + b"\0")
        with (snapshot.root / item.relative).open("rb") as source:
            for chunk in iter(lambda: source.read(1 << 20), b""):
                digest.update(chunk)
        digest.update(b"\0")
    return digest.hexdigest()


def _spec_fields(spec: JobSpec) -> dict[str, Any]:
    fields = dataclasses.asdict(spec)
    fields["snapshot_root"] = None  # the content counts, not where the folder is
    fields.pop("display_name")
    for name in ("entry_script", "conda_environment_file", "private_pip_wheel_path"):
        if fields[name] is not None:
            fields[name] = str(_relative(Path(fields[name]), spec.root))
    return fields


def _relative(path: Path, root: Path) -> Path:
    try:
        return path.absolute().relative_to(root)
    except ValueError:
        return path
