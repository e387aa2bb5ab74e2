"""The pipeline plan: what a local pipeline's driver run reads (`pipeline.json` in its snapshot).

`LocalBackend.submit_pipeline` writes it; the driver (`pipeline_driver`), the pipeline run's
job, reads it in another process. Like the sweep plan it is typed and versioned: a plan of
another format is refused with a clear error. It also keeps the pipeline as submitted
(`LocalBackend.submitted_pipeline` reads it back from the pipeline run's folder).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from himl_tasks.backends.local.plan_files import read_versioned_plan
from himl_tasks.job_spec import JobSpec
from himl_tasks.pipelines import PipelineSpec

PIPELINE_PLAN_VERSION = 2
PIPELINE_PLAN_FILE = "pipeline.json"
STEP_SNAPSHOTS_FOLDER = "step_snapshots"
"""Beside the plan: each step's snapshot as selected at submission, in a folder per step."""


@dataclass(frozen=True)
class PlannedStep:
    """One step of a local pipeline, as its driver submits it.

    Attributes:
        name: The step's name, unique in its pipeline.
        spec: The step's job. Its inputs that no step of the pipeline writes name the version
            resolved at submission; those an upstream step writes are pinned by the driver to
            the version that step registered.
        upstream: The steps that must complete before this one starts, in pipeline order.
        snapshot_folder: The folder, under `STEP_SNAPSHOTS_FOLDER`, of the step's snapshot.
        snapshot_digest: The digest of the step's snapshot as selected at submission (part
            of the step's identity, see `step_reuse`).
        allow_reuse: Whether the step may take an earlier run's outputs instead of running.
    """

    name: str
    spec: JobSpec
    upstream: tuple[str, ...]
    snapshot_folder: str
    snapshot_digest: str
    allow_reuse: bool = True


@dataclass(frozen=True)
class PipelinePlan:
    """The steps of a local pipeline, in an order where each step follows its upstream steps.

    Attributes:
        pipeline: The pipeline as it was submitted.
        steps: The steps, upstream ones first.
        version: The plan's format; `from_json` refuses any other.
    """

    pipeline: PipelineSpec
    steps: tuple[PlannedStep, ...]
    version: int = PIPELINE_PLAN_VERSION

    def to_json(self) -> str:
        """The plan as JSON text; `PipelinePlan.from_json` makes an equal plan of it."""
        return json.dumps(
            {
                "version": self.version,
                "pipeline": json.loads(self.pipeline.to_json()),
                "steps": [
                    {
                        "name": step.name,
                        "spec": json.loads(step.spec.to_json()),
                        "upstream": list(step.upstream),
                        "snapshot_folder": step.snapshot_folder,
                        "snapshot_digest": step.snapshot_digest,
                        "allow_reuse": step.allow_reuse,
                    }
                    for step in self.steps
                ],
            }
        )

    @classmethod
    def from_json(cls, text: str) -> PipelinePlan:
        """The plan `to_json` wrote.

        Raises:
            ConfigurationError: The plan has another format (another version of himl-tasks
                wrote it), or is not a pipeline plan.
        """
        return read_versioned_plan(
            text,
            what="a local pipeline's plan",
            version=PIPELINE_PLAN_VERSION,
            remedy="submit the pipeline again",
            build=lambda fields: cls(
                pipeline=PipelineSpec.from_json(json.dumps(fields["pipeline"])),
                steps=tuple(
                    PlannedStep(
                        name=str(step["name"]),
                        spec=JobSpec.from_json(json.dumps(step["spec"])),
                        upstream=tuple(str(name) for name in step["upstream"]),
                        snapshot_folder=str(step["snapshot_folder"]),
                        snapshot_digest=str(step["snapshot_digest"]),
                        allow_reuse=bool(step["allow_reuse"]),
                    )
                    for step in fields["steps"]
                ),
            ),
        )
