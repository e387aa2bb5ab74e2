"""A `PipelineSpec` as an AzureML SDK v2 pipeline job, built offline.

Each step is a command node: the command job its `JobSpec` becomes as a single job
(`submission.command_job`: environment, compute or serverless, Spot, variables, arguments,
code), named after the step. An input another step writes is bound to that step's output
(`node.inputs.INPUT_<i> = writer.outputs.OUTPUT_<j>`, which AzureML receives as
`${{parent.jobs.<writer>.outputs.OUTPUT_<j>}}`): the step starts when the writer completed
and reads the data asset version it registered. Outputs are the single jobs' named
`uri_folder` outputs (`<dataset>/<job name>/` in their datastore, registered by AzureML as
the dataset's next version when the step completes); an existing dataset is read at the
version resolved once at submission, as a single job reads it.

Decisions where v2 is silent or narrower than `PipelineSpec`:

- `after`: a command node has no control edge in v2 (a pipeline job's graph is its data
  bindings), so a step that runs after another gets a placeholder: the earlier step an
  unregistered `uri_folder` output `HIML_AFTER`, the later one an input
  `HIML_AFTER_<earlier step>` bound to it. AzureML then starts the later step after the
  earlier completed; the job never reads the placeholder.
- `allow_reuse=False`: the node is built with `is_deterministic=False`. With True (the
  default) a command "has been run before in the current workspace with the same input and
  settings, it will reuse results from a previously submitted job when used as a node or
  step in a pipeline" (`command()`'s docstring, azure/ai/ml/entities/_builders/
  command_func.py). The pipeline-wide `settings.force_rerun` is left unset, so other steps
  may still be reused.
- `continue_on_step_failure` is False (AzureML's default, set explicitly): a failed step
  stops its dependants and the pipeline fails.
- A handed-on input's `target_folder` is refused: an input bound to another node's output is
  a `NodeInput`, which carries a mode but no `path_on_compute`
  (azure/ai/ml/entities/_job/pipeline/_io/base.py), so AzureML would never hear of it.
- Two steps with one snapshot folder and different ignore rules are refused: the SDK takes
  a node's code by the folder's `.amlignore` at the moment the pipeline is created, and
  one file cannot hold two sets of rules.
- A step's child job carries the tag `himl_pipeline_step` (its step's name); AzureML marks a
  reused step's child job with the properties `azureml.isreused` = "true" and
  `azureml.reusedrunid` (the job whose outputs it took), which `jobs.download` follows
  (azure/ai/ml/constants/_job/pipeline.py, `PipelineConstants.REUSED_FLAG_FIELD`,
  `REUSED_JOB_ID`; azure/ai/ml/operations/_job_operations.py, `download`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from himl_tasks.backends.azureml_v2 import sdk
from himl_tasks.backends.azureml_v2.submission import SERVERLESS
from himl_tasks.errors import InvalidInputError
from himl_tasks.job_variables import azureml_input_name, azureml_output_name
from himl_tasks.pipelines import PipelineSpec

PIPELINE_TYPE = "pipeline"
"""A pipeline job's `type`."""
STEP_TAG = "himl_pipeline_step"
"""The step's name, on a step's node (and so on its child job)."""
DIGEST_TAG = "himl_pipeline_digest"
"""The content digest of a published pipeline, on its component version."""
AFTER_OUTPUT = "HIML_AFTER"
REUSED_FLAG = "azureml.isreused"
REUSED_JOB = "azureml.reusedrunid"
# A component's name: azure/ai/ml/_schema/core/fields.py, `PythonFuncNameStr` (the pattern
# `ComponentNameStr` checks), so a published pipeline keeps its name unchanged.
_COMPONENT_NAME = re.compile(r"^[a-z][a-z\d_]*$")


def after_input(step: str) -> str:
    """The placeholder input of a step that runs after `step`."""
    return f"{AFTER_OUTPUT}_{step}"


def check_pipeline_v2(pipeline: PipelineSpec, rules: Mapping[str, Sequence[str]]) -> None:
    """Raises unless an AzureML v2 pipeline job can express the pipeline (no side effect).

    Args:
        pipeline: The pipeline.
        rules: Each step's snapshot ignore rules (`snapshot_rules` of its plan), by step.

    Raises:
        InvalidInputError: Naming every part v2 cannot express (see the module docstring).
    """
    problems = []
    for step in pipeline.steps:
        for config in step.job.input_datasets:
            writer = pipeline.step_writing(config.name)
            if writer is not None and config.target_folder is not None:
                problems.append(
                    f"step '{step.name}' reads dataset '{config.name}' (written by step "
                    f"'{writer}') at target_folder {str(config.target_folder)!r}, and AzureML "
                    "v2 takes no folder for an input bound to another step's output: leave "
                    "target_folder out and read the folder get_run_info() gives"
                )
    by_root: dict[Path, tuple[str, Sequence[str]]] = {}
    for step in pipeline.steps:
        root = step.job.snapshot_root
        first = by_root.setdefault(root, (step.name, rules[step.name]))
        if list(first[1]) != list(rules[step.name]):
            problems.append(
                f"steps '{first[0]}' and '{step.name}' share the snapshot folder {root} with "
                "different ignored folders, and AzureML takes a folder's files by the one "
                ".amlignore it holds when the pipeline is submitted: give them the same "
                "ignored_folders, or each its own snapshot folder"
            )
    if problems:
        raise InvalidInputError(
            f"pipeline '{pipeline.name}' cannot run as an AzureML SDK v2 pipeline job: "
            + "; ".join(problems)
        )


def check_component_name(pipeline: PipelineSpec) -> None:
    """Raises unless the pipeline's name is a usable component name (for publishing).

    Raises:
        InvalidInputError: For a name with capitals, '-' or other characters.
    """
    if not _COMPONENT_NAME.fullmatch(pipeline.name):
        raise InvalidInputError(
            f"pipeline '{pipeline.name}' cannot be published on AzureML v2 under its name: a "
            "published pipeline is a registered component, whose name takes lower-case "
            "letters, digits and '_' only, starting with a letter: rename the pipeline "
            f"(e.g. '{re.sub(r'[^a-z0-9_]', '_', pipeline.name.lower())}')"
        )


def after_outputs(pipeline: PipelineSpec, step: str) -> dict[str, Any]:
    """The placeholder output of a step another step runs after (none otherwise)."""
    if not any(step in other.after for other in pipeline.steps):
        return {}
    return {AFTER_OUTPUT: sdk.ml().Output(type="uri_folder", mode="rw_mount")}


def after_inputs(pipeline: PipelineSpec, step: str) -> dict[str, Any]:
    """The placeholder inputs of a step that runs after others, unbound."""
    return {
        after_input(other): sdk.ml().Input(type="uri_folder", mode="download")
        for other in pipeline.step(step).after
    }


def bind_steps(pipeline: PipelineSpec, nodes: Mapping[str, Any]) -> None:
    """Binds each step's handed-on inputs (and placeholders) to the outputs of their writers."""
    for step in pipeline.steps:
        node = nodes[step.name]
        for index, config in enumerate(step.job.input_datasets):
            writer = pipeline.step_writing(config.name)
            if writer is None:
                continue
            position = pipeline.step(writer).writes.index(config.name)
            output = nodes[writer].outputs[azureml_output_name(position)]
            setattr(node.inputs, azureml_input_name(index), output)
        for other in step.after:
            setattr(node.inputs, after_input(other), nodes[other].outputs[AFTER_OUTPUT])


def pipeline_job(
    pipeline: PipelineSpec,
    graph: Mapping[str, Any] | str,
    *,
    name: str | None,
    experiment: str,
    tags: Mapping[str, str],
) -> Any:
    """The `PipelineJob` of a pipeline (nothing sent).

    Args:
        pipeline: The pipeline.
        graph: Each step's command node, by step name, bound (`bind_steps`); or the
            registered pipeline component to run (`azureml:<name>:<version>`,
            `azureml:<name>@latest`).
        name: The job's name (its run id), None for the service to choose.
        experiment: The experiment's name.
        tags: The pipeline job's tags.
    """
    with sdk.quiet():
        if isinstance(graph, str):
            shape: dict[str, Any] = {"component": graph}
        else:
            shape = {"jobs": {step: graph[step] for step in pipeline.order}}
        job = sdk.entities().PipelineJob(
            name=name,
            experiment_name=experiment,
            display_name=pipeline.display_name or f"pipeline {pipeline.name}",
            tags=dict(tags),
            **shape,
        )
        job.settings.continue_on_step_failure = False
        if any(step.job.compute == SERVERLESS for step in pipeline.steps):
            job.settings.default_compute = SERVERLESS  # where a node without compute runs
    return job


# A registered component as a job names it: `azureml:<name>:<version>`, `azureml:<name>@latest`,
# or its ARM id (`.../components/<name>/versions/<version>`).
_COMPONENT_REFERENCE = re.compile(
    r"(?:azureml:(?P<name>[^:@/]+)(?::(?P<version>\d+)|@latest)"
    r"|.*/components/(?P<arm_name>[^/]+)/versions/(?P<arm_version>\d+))"
)


def published_reference(component: object) -> tuple[str, int | None] | None:
    """The (name, version) of the registered component a pipeline job runs (None: latest).

    None for a job that runs no registered component (its own graph).
    """
    found = _COMPONENT_REFERENCE.fullmatch(component) if isinstance(component, str) else None
    if found is None:
        return None
    name = found["name"] or found["arm_name"]
    version = found["version"] or found["arm_version"]
    return str(name), int(version) if version else None


def latest_inputs(pipeline: PipelineSpec, nodes: Mapping[str, Any]) -> None:
    """Makes inputs of existing datasets read the version latest when a job runs.

    For a published pipeline: each such input without a pinned version becomes
    `azureml:<name>@latest`.
    """
    ml = sdk.ml()
    for step in pipeline.steps:
        node = nodes[step.name]
        for index, config in enumerate(step.job.input_datasets):
            if pipeline.step_writing(config.name) is not None or config.version is not None:
                continue
            given = node.inputs[azureml_input_name(index)]
            setattr(
                node.inputs,
                azureml_input_name(index),
                ml.Input(
                    type="uri_folder",
                    path=f"azureml:{config.name}@latest",
                    mode=given.mode,
                    path_on_compute=None
                    if config.target_folder is None
                    else str(config.target_folder),
                ),
            )


def is_reused(job: Any) -> str | None:
    """The job whose outputs a reused step's child job took, else None."""
    properties = getattr(job, "properties", None) or {}
    if str(properties.get(REUSED_FLAG, "")).lower() == "true" and properties.get(REUSED_JOB):
        return str(properties[REUSED_JOB])
    return None
