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
from himl_tasks.snapshot import snapshot_digest
from himl_tasks.sweeps import SweepSpec

# A submission id is the prefix and 48 hex digits (192 bits): short enough for every backend's
# tags and names, long enough that two different jobs never share one.
JOB_SUBMISSION_PREFIX = "himl-job-"
SWEEP_SUBMISSION_PREFIX = "himl-sweep-"
_DIGITS = 48


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


def job_submission_identity(plan: RunPlan, *, workspace: str = "") -> str:
    """The identity a job is submitted under (`himl-job-` and 48 hex digits of `job_identity`).

    It is the first link of the job's chain of submission ids (see `submit_once`).
    """
    return JOB_SUBMISSION_PREFIX + job_identity(plan, workspace=workspace)[:_DIGITS]


def sweep_submission_identity(plan: RunPlan, sweep: SweepSpec, *, workspace: str = "") -> str:
    """The identity a sweep is submitted under: its job's identity and every sweep setting.

    The same job swept over other values, or with another metric or budget, is another sweep.
    """
    job = job_identity(plan, workspace=workspace)
    settings = json.dumps(dataclasses.asdict(sweep), sort_keys=True, default=str)
    digest = hashlib.sha256(f"{job}\0{settings}".encode()).hexdigest()
    return SWEEP_SUBMISSION_PREFIX + digest[:_DIGITS]


def _spec_fields(spec: JobSpec) -> dict[str, Any]:
    fields = dataclasses.asdict(spec)
    fields["snapshot_root"] = None  # the content counts, not where the folder is
    fields.pop("display_name")
    for dataset in (*fields["input_datasets"], *fields["output_datasets"]):
        dataset["local_folder"] = None  # serves the script outside a job, not the job
    for name in ("entry_script", "conda_environment_file", "private_pip_wheel_path"):
        if fields[name] is not None:
            fields[name] = str(_relative(Path(fields[name]), spec.snapshot_root))
    return fields


def _relative(path: Path, root: Path) -> Path:
    try:
        return path.absolute().relative_to(root)
    except ValueError:
        return path
