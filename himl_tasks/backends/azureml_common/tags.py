"""The tags a run is submitted with, and the tags it is found and read back by."""

from __future__ import annotations

import shlex
import sys
from collections.abc import Sequence

from himl_tasks.job_spec import JobSpec

SUBMISSION_TAG = "himl_submission_id"
OUTPUTS_TAG = "himl_outputs"
PIPELINE_TAG = "himl_pipeline"
"""The pipeline's name, on its pipeline run (and on a published version or schedule of it)."""


def default_tags(spec: JobSpec, argv: Sequence[str] | None = None) -> dict[str, str]:
    """The run's tags: the command line, the priority and resume-from, then the spec's own."""
    tags = {"commandline": shlex.join(sys.argv if argv is None else argv)}
    tags["priority"] = spec.priority.value
    if spec.resume_from:
        tags["resume_from"] = spec.resume_from
    if spec.output_datasets:
        tags[OUTPUTS_TAG] = ",".join(config.name for config in spec.output_datasets)
    return {**tags, **spec.tags}
