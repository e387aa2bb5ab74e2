"""The job spec (or pipeline) a v2 job was submitted with, kept beside its files.

AzureML keeps a job's command, environment and code, not the `JobSpec` they were made of; a
job made again from the service's entity would lose what only the spec says (the snapshot's
folder and ignore rules, the datasets by name, the priority as asked). So at submission the
spec (`JobSpec.to_json`) is written into the workspace's artifact store, in the job's folder
(`ExperimentRun/dcid.<job name>/himl/job_spec.json`), through the transfer engine. It lies
outside the folders of a run's files (`outputs/`, `logs/`, ...), so downloads of a run's
files never include it. It holds no secret: the v2 backend refuses SecretReferences before
anything is written (`AzureMLV2Backend.check_spec`).

A pipeline job keeps its `PipelineSpec` (`PipelineSpec.to_json`) the same way, in its own
folder (`himl/pipeline_spec.json`): AzureML keeps the graph of command nodes, not the steps'
job specs, their names and `after`s as given.
"""

from __future__ import annotations

from himl_tasks.backends.azureml_common.kept_files import (
    PIPELINE_FILE,
    forget_text,
    keep_text,
    kept_text,
)
from himl_tasks.errors import InvalidInputError
from himl_tasks.job_spec import JobSpec
from himl_tasks.pipelines import PipelineSpec
from himl_tasks.runs import RunRef
from himl_tasks.storage import Datastore

SPEC_FILE = "himl/job_spec.json"


def save_submitted_spec(run_files: Datastore, spec: JobSpec | PipelineSpec) -> None:
    """Writes the spec (or pipeline) into the job's folder (`run_files`: the job's view)."""
    keep_text(
        run_files, PIPELINE_FILE if isinstance(spec, PipelineSpec) else SPEC_FILE, spec.to_json()
    )


def forget_submitted_spec(run_files: Datastore) -> None:
    """Removes the spec (or pipeline) written for a job the service then refused to create."""
    for name in (SPEC_FILE, PIPELINE_FILE):
        forget_text(run_files, name)


def load_submitted_spec(run_files: Datastore, ref: RunRef) -> JobSpec:
    """The spec the job was submitted with.

    Raises:
        InvalidInputError: The job has none (submitted otherwise: SDK v1, the studio, a sweep,
            an older himl-tasks), or it is damaged; the message says how to resubmit instead.
    """
    again = (
        f"submit the job again with resume_from='{ref.recovery_id}' (JobSpec.resuming_from, "
        "or run_to_completion, which resubmits lost runs itself)"
    )
    text = _kept_text(
        run_files,
        SPEC_FILE,
        f"run '{ref}' keeps no job spec (it was not submitted as a command job by "
        f"himl-tasks' SDK v2 backend), so it cannot be resubmitted from here: {again}",
    )
    try:
        return JobSpec.from_json(text)
    except InvalidInputError as error:
        raise InvalidInputError(
            f"run '{ref}': its job spec ({SPEC_FILE} in its files) is damaged ({error}); {again}"
        ) from None


def load_submitted_pipeline(run_files: Datastore, ref: RunRef | str) -> PipelineSpec:
    """The pipeline a pipeline job (or a published version, `ref`) was submitted with.

    Raises:
        InvalidInputError: The job keeps none (not submitted by himl-tasks' SDK v2 backend
            as a pipeline), or it is damaged.
    """
    again = "submit the PipelineSpec again with submit_pipeline"
    text = _kept_text(
        run_files,
        PIPELINE_FILE,
        f"run '{ref}' keeps no pipeline (it was not submitted as a pipeline by himl-tasks' "
        f"SDK v2 backend): {again}",
    )
    try:
        return PipelineSpec.from_json(text)
    except InvalidInputError as error:
        raise InvalidInputError(
            f"run '{ref}': its pipeline ({PIPELINE_FILE} in its files) is damaged ({error}); "
            f"{again}"
        ) from None


def _kept_text(run_files: Datastore, name: str, missing: str) -> str:
    """The text of a kept file, checksum checked; `missing` is the error's message if none."""
    text = kept_text(run_files, name)
    if text is None:
        raise InvalidInputError(missing)
    return text
