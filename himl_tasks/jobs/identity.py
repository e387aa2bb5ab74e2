"""A job's identity: what makes two submissions the same job.

Two submissions are the same job when their specs, the content of their snapshots and the
versions of their input datasets are the same. A flow re-run after a crash uses this to find
the run it already started, rather than submitting the job again. Its parts live below the
backends (`run_plan.identity_fields`, `Snapshot.content_digest`), which read them too: a local
pipeline's step is reused by an identity made of the same parts.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping

from himl_tasks.pipelines import PipelineSpec
from himl_tasks.run_plan import RunPlan, identity_fields
from himl_tasks.sweeps import SweepSpec

# A submission id is the prefix and 48 hex digits (192 bits): short enough for every backend's
# tags and names, long enough that two different jobs never share one.
JOB_SUBMISSION_PREFIX = "himl-job-"
SWEEP_SUBMISSION_PREFIX = "himl-sweep-"
PIPELINE_SUBMISSION_PREFIX = "himl-pipeline-"
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
    digest.update(json.dumps(identity_fields(plan.spec), sort_keys=True, default=str).encode())
    for resolved in plan.inputs:
        digest.update(f"\0input {resolved.name}:{resolved.version}".encode())
    digest.update(plan.snapshot.content_digest().encode())
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


def pipeline_submission_identity(
    pipeline: PipelineSpec, plans: Mapping[str, RunPlan], *, workspace: str = ""
) -> str:
    """The identity a pipeline is submitted under: every step's job identity, and the graph.

    Two submissions are the same pipeline when their steps have the same names, jobs (spec,
    snapshot content, the versions of the existing datasets they read), the same datasets
    handed from step to step, order and reuse settings, in the same experiment with the same
    tags. The display name does not count, as it does not for a job.

    Args:
        pipeline: The pipeline.
        plans: Each step's job, prepared by the backend it runs on, by step name; the plan
            holds the inputs read from the workspace (a step's inputs another step writes
            have no version before the pipeline runs: the name and settings count).
        workspace: Names the workspace, so the same pipeline in two workspaces differs.
    """
    digest = hashlib.sha256()
    fields = {
        "name": pipeline.name,
        "experiment": pipeline.experiment,
        "tags": dict(pipeline.tags),
        "existing_datasets": list(pipeline.existing_datasets),
    }
    digest.update(json.dumps(fields, sort_keys=True).encode())
    for step in pipeline.ordered_steps:
        handed_on = [
            dataclasses.asdict(config)
            for config in step.job.input_datasets
            if pipeline.step_writing(config.name) is not None
        ]
        settings = {"after": list(step.after), "allow_reuse": step.allow_reuse}
        step_fields = json.dumps([step.name, settings, handed_on], sort_keys=True, default=str)
        digest.update(f"\0step {step_fields}".encode())
        digest.update(job_identity(plans[step.name], workspace=workspace).encode())
    return PIPELINE_SUBMISSION_PREFIX + digest.hexdigest()[:_DIGITS]
