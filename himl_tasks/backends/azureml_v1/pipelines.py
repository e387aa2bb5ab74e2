"""A `PipelineSpec` as an azureml-pipeline-core pipeline, and its runs read back as steps.

Each step is a `PythonScriptStep` made of the step's job exactly as a single job's
`ScriptRunConfig` is made (snapshot, environment, compute, variables, arguments); outputs are
`OutputFileDatasetConfig`s registered on completion, handed to the steps that read them with
`as_input()`. What AzureML v1's pipelines cannot express is refused before anything is sent.

A pipeline run's steps are its child runs (`PipelineRun.get_steps()` is `get_children()`,
azureml/pipeline/core/run.py). A step run carries its pipeline's id in the tag
`azureml.pipeline`, and a step AzureML reused from an earlier run the properties
`azureml.reusedrunid`, `azureml.reusednodeid` and `azureml.reusedpipeline` (both read by
`StepRun._from_dto`, azureml/pipeline/core/run.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from himl_tasks.errors import InvalidInputError
from himl_tasks.pipelines import PipelineSpec, PipelineStep

REUSED_RUN_PROPERTY = "azureml.reusedrunid"
SUBMISSION_MARK = "himl submission "


def check_pipeline_for_v1(pipeline: PipelineSpec) -> None:
    """Refuses what a v1 pipeline step cannot run; nothing has been done yet.

    A `PythonScriptStep` runs a script: azureml-pipeline-steps 1.62 takes `script_name` and no
    command (azureml/pipeline/steps/python_script_step.py), so a step's job cannot be a module.

    Raises:
        InvalidInputError: A step's job runs a module.
    """
    for step in pipeline.steps:
        if step.job.module is not None:
            raise InvalidInputError(
                f"step '{step.name}' runs module '{step.job.module}', but an AzureML v1 "
                "pipeline step (PythonScriptStep) runs a script: give the step's job an "
                "entry_script (a file that runs the module), or submit the pipeline to the "
                "AzureML v2 or local backend"
            )


def check_shared_snapshot_roots(rules_by_step: Mapping[str, tuple[Path, list[str]]]) -> None:
    """Refuses two steps sharing a snapshot folder but not its ignore rules.

    AzureML takes a source folder's files by the `.amlignore` in it while the pipeline is
    submitted: one folder has one set of rules then.

    Raises:
        InvalidInputError: Two steps of one snapshot root select different files.
    """
    seen: dict[Path, tuple[str, list[str]]] = {}
    for step, (root, rules) in rules_by_step.items():
        if root in seen and seen[root][1] != rules:
            raise InvalidInputError(
                f"steps '{seen[root][0]}' and '{step}' share the snapshot folder {root} with "
                "different ignored_folders, but AzureML v1 snapshots a folder once per "
                "pipeline submission: give both the same ignored_folders, or each its own "
                "snapshot_root"
            )
        seen.setdefault(root, (step, rules))


def python_script_step(
    step: PipelineStep, config: Any, inputs: Sequence[Any], outputs: Sequence[Any]
) -> Any:
    """The step as a `PythonScriptStep`, from the `ScriptRunConfig` its job submits as.

    The run configuration (environment, variables, nodes, duration) is the job's own; the
    datasets travel as the step's inputs and outputs, which the pipeline wires together.
    """
    from azureml.pipeline.steps import PythonScriptStep

    run_config = config.run_config
    run_config.data = {}
    run_config.output_data = {}
    return PythonScriptStep(
        script_name=config.script,
        name=step.name,
        arguments=list(config.arguments or []),
        compute_target=run_config.target,
        runconfig=run_config,
        inputs=list(inputs),
        outputs=list(outputs),
        source_directory=config.source_directory,
        allow_reuse=step.allow_reuse,
    )


def submission_description(pipeline: PipelineSpec, submission_id: str | None) -> str:
    """The pipeline's description, naming the submission id when there is one.

    The description travels in the request that creates the pipeline run
    (`PipelineRunCreationInfo(description=graph._name)`, azureml/pipeline/core/
    _aeva_provider.py), unlike tags, which `Experiment.submit` sets in a later request: a
    submitter that died before hearing back finds its run by it.
    """
    title = pipeline.display_name or pipeline.name
    return title if submission_id is None else f"{title} ({SUBMISSION_MARK}{submission_id})"


def reused_run_id(run: Any) -> str | None:
    """The id of the earlier step run whose outputs a reused step run took, else None."""
    properties = run.get_properties() if hasattr(run, "get_properties") else {}
    found = (properties or {}).get(REUSED_RUN_PROPERTY)
    return None if found is None else str(found)


def step_name(run: Any) -> str:
    """The name of the step a step run ran: the run's name, else its display name.

    A step run's name is its step's (`StepRun.wait_for_completion` prints `self.name` as the
    step's, azureml/pipeline/core/run.py; `Run.name` is the run record's `name`,
    azureml/_run_impl/run_base.py).
    """
    return str(getattr(run, "name", None) or run.display_name)
