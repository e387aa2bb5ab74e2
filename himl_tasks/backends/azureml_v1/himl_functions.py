"""hi-ml's AzureML SDK v1 building blocks, with hi-ml 0.2's signatures, on this backend.

`create_run_configuration`, `create_script_run` and `submit_run` behave as hi-ml's
(health_azure/himl.py, v0.2.11). hi-ml users who assemble a submission themselves write:

```python
run_config = create_run_configuration(workspace, "gpu-cluster", conda_environment_file=conda)
script_run_config = create_script_run(snapshot_root, entry_script, ["--epochs", "3"])
script_run_config.run_config = run_config
run = submit_run(workspace, "my_experiment", script_run_config, wait_for_completion=True)
```

The environment is built and reused as the backend builds it, datasets reach the job as
`INPUT_<i>` / `OUTPUT_<i>` as the backend sends them (an output is written to
`<name>/<run id>/`, not hi-ml's shared `<name>/`), and the submission goes through the backend's
service seam. `workspace` may be an `azureml.core.Workspace` or an `AzureMLV1Backend`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from himl_tasks.backends.azureml_v1.backend import AzureMLV1Backend, refuse_secret_references
from himl_tasks.backends.azureml_v1.datasets import input_consumption, output_configuration
from himl_tasks.backends.azureml_v1.environment import build_environment, environment_for
from himl_tasks.backends.base import Backend
from himl_tasks.backends.queued_run import announce_queued_run, wait_for_run_and_children
from himl_tasks.datasets import DatasetConfig
from himl_tasks.errors import InputPathNotFoundError, InvalidInputError
from himl_tasks.job_spec import (
    COMMANDLINE_TAG,
    JobSpec,
    job_arguments,
    parse_duration,
    sanitize_experiment_name,
)
from himl_tasks.job_variables import DEFAULT_ENVIRONMENT_VARIABLES
from himl_tasks.number_checks import is_whole_number
from himl_tasks.runs import RunRef, write_most_recent_run


def create_run_configuration(
    workspace: Any,
    compute_cluster_name: str,
    conda_environment_file: str | os.PathLike[str] | None = None,
    aml_environment_name: str = "",
    environment_variables: Mapping[str, str] | None = None,
    pip_extra_index_url: str = "",
    private_pip_wheel_path: str | os.PathLike[str] | None = None,
    docker_base_image: str = "",
    docker_shm_size: str = "",
    num_nodes: int = 1,
    max_run_duration: str = "",
    input_datasets: Sequence[DatasetConfig] | None = None,
    output_datasets: Sequence[DatasetConfig] | None = None,
) -> Any:
    """An azureml `RunConfiguration`: environment, variables, cluster, nodes and datasets.

    As hi-ml's: the environment is the registered one named `aml_environment_name`, else
    built from `conda_environment_file` (which must pin python) and registered (reused while
    unchanged); `environment_variables` go over hi-ml's defaults; `docker_shm_size` gives a
    Docker configuration; the cluster must exist; `num_nodes > 1` is an MPI job;
    `max_run_duration` ("90s", "30m", "3.5h", "2d") limits the run; datasets become `data`
    (`INPUT_<i>`) and `output_data` (`OUTPUT_<i>`). Everything is checked before the
    environment is registered.

    Raises:
        InvalidInputError: (a ValueError, as hi-ml raises) If neither environment is given, the
            conda file pins no python, `num_nodes` / `max_run_duration` is unusable, or an
            environment variable is not text (a `SecretReference` is refused: AzureML would
            keep its value with the run).
        ComputeNotFoundError: If the workspace has no such cluster.
        DatasetNotFoundError: If an input dataset neither exists nor has a folder to make it.
        ConfigurationError: If the named environment is not registered.
    """
    from azureml.core.runconfig import DockerConfiguration, MpiConfiguration, RunConfiguration

    backend = _azureml_backend_on(workspace)
    if not aml_environment_name and not conda_environment_file:
        raise InvalidInputError(
            "One of the two arguments 'aml_environment_name' or 'conda_environment_file' must "
            "be given."
        )
    if not is_whole_number(num_nodes) or num_nodes < 1:
        raise InvalidInputError(f"num_nodes must be a whole number of 1 or more, not {num_nodes!r}")
    seconds = parse_duration(max_run_duration or None)
    if not aml_environment_name and conda_environment_file:
        _check_python_pinned(Path(conda_environment_file))
    backend.check_compute(compute_cluster_name)
    # The backend's environment code reads these settings from a job spec; the module is a
    # placeholder (hi-ml's run configuration holds no script: create_script_run names it).
    spec = JobSpec(
        module="himl_tasks",
        # Checked as a job's: names a process can have, text values.
        environment_variables=environment_variables,
        conda_environment_file=Path(conda_environment_file) if conda_environment_file else None,
        environment_name=aml_environment_name,
        pip_extra_index_url=pip_extra_index_url,
        private_pip_wheel_path=Path(private_pip_wheel_path) if private_pip_wheel_path else None,
        docker_base_image=docker_base_image,
    )
    refuse_secret_references(spec)
    inputs = [
        input_consumption(backend._dataset(config)[0], config, index)
        for index, config in enumerate(input_datasets or ())
    ]
    outputs = [
        output_configuration(backend.service.datastore(config.datastore), config, index)
        for index, config in enumerate(output_datasets or ())
    ]
    if aml_environment_name:
        environment = environment_for(spec, backend.service)
    else:
        built = build_environment(spec, backend.service)
        environment = backend.service.environment(built.name) or (
            backend.service.register_environment(built)
        )
    run_config = RunConfiguration()
    run_config.environment = environment
    run_config.environment_variables = {
        **DEFAULT_ENVIRONMENT_VARIABLES,
        **spec.environment_variables,
    }
    if docker_shm_size:
        run_config.docker = DockerConfiguration(use_docker=True, shm_size=docker_shm_size)
    run_config.target = compute_cluster_name
    if seconds is not None:
        run_config.max_run_duration_seconds = round(seconds)
    if num_nodes > 1:
        mpi = MpiConfiguration(node_count=num_nodes)
        run_config.mpi = mpi
        run_config.framework = "Python"
        run_config.communicator = "IntelMpi"
        run_config.node_count = mpi.node_count
    if inputs or outputs:
        run_config.data = {item.name: item for item in inputs}
        run_config.output_data = {item.name: item for item in outputs}
    return run_config


def create_script_run(
    snapshot_root_directory: str | os.PathLike[str] | None = None,
    entry_script: str | os.PathLike[str] | None = None,
    script_params: Sequence[str] | None = None,
) -> Any:
    """An azureml `ScriptRunConfig`: the snapshot folder, the script in it, its arguments.

    As hi-ml's (0.2 argument order): the snapshot is the current folder when not given, the
    script is the running one (`sys.argv[0]`), and the arguments are this process's
    (`sys.argv[1:]` without `--azureml` or `--himl-local`) when `script_params` is None. Set
    its `run_config` to `create_run_configuration`'s before submitting.

    Raises:
        InvalidInputError: (a ValueError, as hi-ml raises) If an absolute entry script lies
            outside the snapshot folder, or `script_params` is one string.
    """
    from azureml.core import ScriptRunConfig

    if snapshot_root_directory is None:
        print("No snapshot root directory given. All files in the current working directory "
              "will be copied to AzureML.")  # fmt: skip
        root = Path.cwd()
    else:
        root = Path(snapshot_root_directory)
        print(f"All files in this folder will be copied to AzureML: {root}")
    if entry_script is None:
        print("No entry script given. The current main Python file will be executed in AzureML.")
    script = Path(sys.argv[0] if entry_script is None else entry_script)
    if script.is_absolute():
        try:
            # AzureML runs Linux: the script's path in the snapshot uses '/', also from Windows.
            relative = script.relative_to(root).as_posix()
        except ValueError:
            raise InvalidInputError(
                "The entry script must be inside of the snapshot root directory. Snapshot "
                f"root: {root}, entry script: {script}"
            ) from None
    else:
        relative = script.as_posix()
    arguments = [str(arg) for arg in job_arguments(script_params, sys.argv)]
    print(f"This command will be run in AzureML: {relative} {' '.join(arguments)}")
    return ScriptRunConfig(source_directory=str(root), script=relative, arguments=arguments)


def submit_run(
    workspace: Any,
    experiment_name: str,
    script_run_config: Any,
    tags: Mapping[str, str] | None = None,
    wait_for_completion: bool = False,
    wait_for_completion_show_output: bool = False,
    *,
    timeout_seconds: float | None = None,
) -> Any:
    """Submits a `ScriptRunConfig` (or `HyperDriveConfig`); returns the azureml `Run`.

    As hi-ml's: the experiment name is made one AzureML accepts; `tags=None` tags the run
    with its arguments (`commandline_args`), `{}` with nothing; the run's recovery id
    (`experiment:run_id`) is written to `most_recent_run.txt` in the current folder; the run's
    portal link is printed. With `wait_for_completion` it waits (streaming the log with
    `wait_for_completion_show_output`) and raises unless the run and all its child runs
    completed. Unlike hi-ml it waits at most `timeout_seconds` (default: the backend's).

    Raises:
        InvalidInputError: If the experiment name has nothing AzureML can use.
        JobFailedError: If waiting, and the run or a child run did not complete.
        JobTimeoutError: If waiting, and the run has not ended by the deadline.
    """
    backend = _azureml_backend_on(workspace)
    experiment = sanitize_experiment_name(experiment_name)
    if tags is None:
        arguments = _arguments(script_run_config)
        tags = {} if arguments is None else {COMMANDLINE_TAG: " ".join(arguments)}
    run = backend.service.submit(experiment, script_run_config, dict(tags))
    ref = RunRef(experiment, run.id, backend.name, portal_url=run.get_portal_url())
    write_most_recent_run(Path.cwd(), ref)
    announce_queued_run(backend, ref)
    if wait_for_completion:
        wait_for_run_and_children(
            backend,
            ref,
            show_output=wait_for_completion_show_output,
            timeout_seconds=timeout_seconds,
        )
    return backend.run_object(ref)


def _azureml_backend_on(workspace: Any) -> AzureMLV1Backend:
    """The backend on a workspace: an `AzureMLV1Backend` as it is, else one opened on it.

    Raises:
        InvalidInputError: For another backend: these functions build AzureML's own objects.
    """
    if isinstance(workspace, AzureMLV1Backend):
        return workspace
    if isinstance(workspace, Backend):
        raise InvalidInputError(
            f"create_run_configuration and submit_run build AzureML SDK v1 objects, so they "
            f"take an azureml.core.Workspace or an AzureMLV1Backend, not {workspace!r}; on any "
            "backend, submit with submit_to_azure_if_needed or Backend.submit"
        )
    return AzureMLV1Backend(workspace)


def _check_python_pinned(conda_file: Path) -> None:
    """hi-ml's check: the conda file must pin python (azureml's Environment would pick one)."""
    from azureml.core.conda_dependencies import CondaDependencies

    if not conda_file.is_file():
        raise InputPathNotFoundError(f"conda_environment_file {conda_file} does not exist")
    dependencies = CondaDependencies(conda_dependencies_file_path=str(conda_file))
    if dependencies.get_python_version() is None:
        raise InvalidInputError(
            f"conda_environment_file {conda_file} must pin the python version (e.g. "
            "'- python=3.11' under dependencies), as hi-ml requires"
        )


def _arguments(config: Any) -> list[str] | None:
    """The script's arguments: a ScriptRunConfig's own, or those of the one a sweep wraps."""
    arguments = getattr(config, "arguments", None)
    if arguments is None:
        # A HyperDriveConfig keeps the ScriptRunConfig it sweeps as `run_config` (hi-ml reads
        # `script_run_config.run_config.arguments` there).
        arguments = getattr(getattr(config, "run_config", None), "arguments", None)
    return None if arguments is None else [str(arg) for arg in arguments]
