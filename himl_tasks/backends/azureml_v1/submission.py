"""Turning a `JobSpec` into an AzureML `ScriptRunConfig`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from himl_tasks.job_spec import JobSpec
from himl_tasks.job_variables import AZUREML_V1_IN_JOB, IN_JOB, RESUME_FROM
from himl_tasks.secret_reference import plain_values
from himl_tasks.snapshot import Snapshot


def script_run_config(
    spec: JobSpec,
    snapshot: Snapshot,
    *,
    environment: Any,
    compute: str,
    inputs: Sequence[Any] = (),
    outputs: Sequence[Any] = (),
    environment_variables: Mapping[str, str] | None = None,
) -> Any:
    """The `ScriptRunConfig` for a job.

    It holds the snapshot, script or module, arguments, compute, nodes, duration, the
    environment and its variables, and the datasets in and out.

    Raises:
        InvalidInputError: If the script is missing, outside the snapshot or excluded from it.
    """
    from azureml.core import ScriptRunConfig
    from azureml.core.runconfig import DockerConfiguration, PyTorchConfiguration

    processes = spec.num_nodes * spec.processes_per_node
    distributed = (
        PyTorchConfiguration(process_count=processes, node_count=spec.num_nodes)
        if processes > 1
        else None
    )
    seconds = spec.max_run_duration
    common: dict[str, Any] = {
        "source_directory": str(spec.snapshot_root),
        "compute_target": compute,
        "environment": environment,
        "distributed_job_config": distributed,
        "docker_runtime_config": DockerConfiguration(
            use_docker=True, shm_size=spec.docker_shm_size or None
        ),
        "max_run_duration_seconds": None if seconds is None else round(seconds),
    }
    if spec.module is not None:
        command = ["python", "-m", spec.module, *spec.args]
        config = ScriptRunConfig(command=command, **common)
    else:
        assert spec.entry_script is not None
        script = snapshot.entry_script(spec.entry_script)
        config = ScriptRunConfig(script=script, arguments=list(spec.args), **common)
    run_config = config.run_config
    variables = dict(environment_variables or plain_values(spec.environment_variables))
    variables[IN_JOB] = AZUREML_V1_IN_JOB  # how the job's runtime finds its in-job half
    if spec.resume_from:
        variables[RESUME_FROM] = spec.resume_from
    run_config.environment_variables = variables
    if inputs or outputs:
        run_config.data = {item.name: item for item in inputs}
        run_config.output_data = {item.name: item for item in outputs}
    return config
