"""Turning a prepared job (`RunPlan`) into an AzureML v2 command job, built offline.

The job's code is the snapshot root, uploaded by the SDK when the job is created with the
snapshot's rules in `.amlignore` (the SDK honours `.amlignore`, else `.gitignore`:
azure/ai/ml/_utils/_asset_utils.py, `get_ignore_file`), so AzureML takes the files
`select_snapshot` chose, within the same size limits.
"""

from __future__ import annotations

import hashlib
import re
import shlex
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from himl_tasks.backends.azureml_common.tags import OUTPUTS_TAG, SUBMISSION_TAG, default_tags
from himl_tasks.backends.azureml_v2 import sdk
from himl_tasks.datasets import DatasetConfig, ResolvedDataset
from himl_tasks.job_spec import Priority
from himl_tasks.job_variables import (
    AZUREML_V2_IN_JOB,
    IN_JOB,
    RESUME_FROM,
    azureml_input_name,
    azureml_output_name,
)
from himl_tasks.run_plan import RunPlan
from himl_tasks.secret_reference import plain_values
from himl_tasks.snapshot import ignore_rules

SERVERLESS = "serverless"
"""The compute name that asks for serverless compute (no cluster)."""
LOW_PRIORITY_TAG = "himl_low_priority"
"""How a low-priority job got its VMs: `spot` (serverless job tier) or `cluster:<name>`."""
JOB_NAME_PLACEHOLDER = "${{name}}"
"""What AzureML replaces by the job's name in an output's path."""


def job_name_for(submission_id: str) -> str:
    """The job name of a submission: the same id always names the same job."""
    return "himl_" + hashlib.sha256(submission_id.encode()).hexdigest()[:32]


def new_job_name() -> str:
    """A job name for a submission without an id (unique, as AzureML's own are)."""
    return "himl_" + uuid.uuid4().hex


@dataclass(frozen=True)
class Placement:
    """Where the job runs.

    Attributes:
        compute: The cluster's name, or None for serverless compute.
        spot: Ask for the Spot job tier (a low-priority job on serverless compute).
        low_priority_record: What the job's `himl_low_priority` tag records ("" for a
            dedicated job).
    """

    compute: str | None
    spot: bool = False
    low_priority_record: str = ""


def placement_for(compute: str, priority: Priority, *, cluster_is_low_priority: bool) -> Placement:
    """Where a job of that compute and priority runs (the cluster's tier checked before)."""
    low = priority is Priority.LOW_PRIORITY
    if compute == SERVERLESS:
        return Placement(None, spot=low, low_priority_record="spot" if low else "")
    record = f"cluster:{compute}" if low or cluster_is_low_priority else ""
    return Placement(compute, low_priority_record=record)


def snapshot_rules(plan: RunPlan) -> list[str]:
    """The ignore rules that make AzureML take the plan's snapshot (written to .amlignore)."""
    spec = plan.spec
    return ignore_rules(spec.snapshot_root, spec.ignored_folders) + plan.snapshot.extra_ignore_rules


def job_tags(plan: RunPlan, placement: Placement, submission_id: str | None) -> dict[str, str]:
    """The job's tags: v1's (the spec's own among them), the low-priority record, the id.

    v1's are the command line, the priority, resume-from, the outputs' names, then the spec's
    own tags. The tags this backend reads back (the outputs' names, the submission id, the
    low-priority record) are its own: a spec's tag of the same name does not replace them.
    """
    spec = plan.spec
    tags = default_tags(spec)
    for own in (OUTPUTS_TAG, SUBMISSION_TAG, LOW_PRIORITY_TAG):
        tags.pop(own, None)
    if spec.output_datasets:
        tags[OUTPUTS_TAG] = ",".join(config.name for config in spec.output_datasets)
    if placement.low_priority_record:
        tags[LOW_PRIORITY_TAG] = placement.low_priority_record
    if submission_id is not None:
        tags[SUBMISSION_TAG] = submission_id
    return tags


def job_inputs(
    configs: Sequence[DatasetConfig], resolved: Sequence[ResolvedDataset | None]
) -> dict[str, Any]:
    """Input `i` as `INPUT_<i>`: the data asset version the plan resolved, by name and version.

    Downloaded by default, mounted read-only with `use_mounting`; at `target_folder` when set.
    An input resolved as None has no path yet: a pipeline binds it to another step's output.
    """
    ml = sdk.ml()
    inputs = {}
    for index, (config, dataset) in enumerate(zip(configs, resolved, strict=True)):
        target = str(config.target_folder) if config.target_folder is not None else None
        inputs[azureml_input_name(index)] = ml.Input(
            type="uri_folder",
            path=None if dataset is None else f"azureml:{dataset.name}:{dataset.version}",
            mode="ro_mount" if config.use_mounting else "download",
            path_on_compute=target,
        )
    return inputs


def output_folder(config: DatasetConfig) -> str:
    """Where a job's output dataset is written: `<name>/<job name>/`, so versions never mix."""
    return f"{config.name}/{JOB_NAME_PLACEHOLDER}/"


# A job name this backend gives (`job_name_for`, `new_job_name`): `himl_` and 32 hex digits.
_JOB_NAME = re.compile(r"himl_[0-9a-f]{32}")


def job_of_output_folder(name: str, folder: str) -> str | None:
    """The job that wrote a data asset version, read from its folder; None if not a job's.

    AzureML registers a job's named output itself, with no tag of ours, so the version's
    folder (`output_folder`: `<name>/<job name>/`) is what says which job made it.
    """
    parts = folder.strip("/").split("/")
    if len(parts) == 2 and parts[0] == name and _JOB_NAME.fullmatch(parts[1]):
        return parts[1]
    return None


def job_outputs(configs: Sequence[DatasetConfig], datastores: Sequence[str]) -> dict[str, Any]:
    """Output `i` as `OUTPUT_<i>`, named as its dataset, registered as its next version.

    AzureML registers a named output as the next version of that data asset when the job
    completes.

    Mounted read-write by default (hi-ml's default), uploaded at the end with
    `use_mounting=False`; at `target_folder` when set.
    """
    ml = sdk.ml()
    outputs = {}
    for index, (config, datastore) in enumerate(zip(configs, datastores, strict=True)):
        target = str(config.target_folder) if config.target_folder is not None else None
        outputs[azureml_output_name(index)] = ml.Output(
            type="uri_folder",
            path=f"azureml://datastores/{datastore}/paths/{output_folder(config)}",
            mode="upload" if config.use_mounting is False else "rw_mount",
            name=config.name,
            path_on_compute=target,
        )
    return outputs


def job_command(plan: RunPlan) -> str:
    """The command line the job runs: `python <script> <args>` or `python -m <module> <args>`."""
    spec = plan.spec
    if spec.module is not None:
        return shlex.join(["python", "-m", spec.module, *spec.args])
    assert spec.entry_script is not None
    return shlex.join(["python", plan.snapshot.entry_script(spec.entry_script), *spec.args])


def job_environment_variables(plan: RunPlan) -> dict[str, str]:
    """The user's variables (plain values only), the in-job half, the run to resume from."""
    spec = plan.spec
    variables = dict(plain_values(spec.environment_variables))
    variables[IN_JOB] = AZUREML_V2_IN_JOB  # how the job's runtime finds its in-job half
    if spec.resume_from:
        variables[RESUME_FROM] = spec.resume_from
    return variables


def command_job(
    plan: RunPlan,
    *,
    name: str,
    environment: str,
    placement: Placement,
    tags: Mapping[str, str],
    output_datastores: Sequence[str],
    inputs: Mapping[str, Any] | None = None,
    extra_outputs: Mapping[str, Any] | None = None,
    is_deterministic: bool = True,
) -> Any:
    """The command job of a prepared job (an `azure.ai.ml` `command()` builder, offline).

    Args:
        plan: The prepared job.
        name: The job's name (its run id), or a pipeline step's node name.
        environment: The environment as a job names it (`azureml:<name>:<version>`).
        placement: The compute, and whether to ask for the Spot tier.
        tags: The job's tags.
        output_datastores: The datastore of each output dataset, by name.
        inputs: The job's inputs instead of the plan's (a pipeline step's, some of them
            bound to other steps' outputs).
        extra_outputs: Outputs beyond the output datasets (a pipeline step's placeholder).
        is_deterministic: False for a pipeline step AzureML must never reuse (the anonymous
            component's `is_deterministic`).
    """
    spec = plan.spec
    processes = spec.num_nodes * spec.processes_per_node
    options: dict[str, Any] = {}
    with sdk.quiet():
        ml, entities = sdk.ml(), sdk.entities()
        if processes > 1:
            options["distribution"] = ml.PyTorchDistribution(
                process_count_per_instance=spec.processes_per_node
            )
        if placement.spot:
            options["queue_settings"] = entities.QueueSettings(job_tier="Spot")
        if spec.max_run_duration is not None:
            options["timeout"] = max(1, round(spec.max_run_duration))
        if spec.docker_shm_size:
            options["shm_size"] = spec.docker_shm_size
        return ml.command(
            name=name,
            display_name=spec.display_name or None,
            experiment_name=plan.experiment,
            command=job_command(plan),
            code=str(spec.snapshot_root),
            environment=environment,
            compute=placement.compute,
            instance_count=spec.num_nodes,
            environment_variables=job_environment_variables(plan),
            inputs=dict(inputs)
            if inputs is not None
            else job_inputs(spec.input_datasets, plan.inputs),
            outputs={
                **job_outputs(spec.output_datasets, output_datastores),
                **(extra_outputs or {}),
            },
            tags=dict(tags),
            is_deterministic=is_deterministic,
            **options,
        )


def output_names(tags: Mapping[str, str]) -> list[str]:
    """The output dataset names a job's tags record, in the job's order."""
    return [name for name in str(tags.get(OUTPUTS_TAG, "")).split(",") if name]
