"""`submit_to_azure_if_needed`: hi-ml's one call that runs a script here or submits it.

```python
from himl_tasks import submit_to_azure_if_needed

run_info = submit_to_azure_if_needed(compute_cluster_name="cpu-cluster",
                                     wait_for_completion=True)
# Plain `python train.py`: goes on here. `--azureml`: submitted to AzureML, and this process
# exits; `--himl-local`: submitted to the local backend, likewise. In the job: goes on there.
```
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from himl_tasks.backends.base import Backend
from himl_tasks.backends.local.backend import LocalBackend
from himl_tasks.backends.queued_run import announce_queued_run, wait_for_run_and_children
from himl_tasks.datasets import DatasetConfig, as_dataset_configs
from himl_tasks.errors import InvalidInputError
from himl_tasks.himl import azureml_workspace
from himl_tasks.himl.command_line import Target, submission_target
from himl_tasks.himl.himl_job_spec import (
    PathOrString,
    entry_point,
    environment_variables_for_runs,
    ignored_folders_in,
)
from himl_tasks.himl.plain_run import plain_run_info
from himl_tasks.himl.run_objects import run_object
from himl_tasks.himl.workspace_resolution import resolve_backend
from himl_tasks.job_spec import (
    AZUREML_FLAG,
    COMMANDLINE_TAG,
    EXPERIMENT_NAME_VARIABLE,
    JobSpec,
    job_arguments,
)
from himl_tasks.number_checks import is_seconds
from himl_tasks.run_plan import RunPlan
from himl_tasks.runs import RunRef, write_most_recent_run
from himl_tasks.runtime import get_run_info
from himl_tasks.runtime.in_job_platform import in_job_platform
from himl_tasks.secret_reference import SecretReference
from himl_tasks.snapshot import entry_script_in_root
from himl_tasks.sweeps import SweepSpec

logger = logging.getLogger(__name__)

WAIT_MARGIN_SECONDS = 3600.0
"""Added to `max_run_duration` for the wait's deadline: queueing, image builds, uploads."""
INTERRUPTED_EXIT_CODE = 130
"""The exit code of a submission whose wait Ctrl-C stopped (a shell's, 128 + SIGINT)."""


@runtime_checkable
class HyperDriveBackend(Protocol):
    """A backend that runs an AzureML `HyperDriveConfig` (the AzureML v1 backend)."""

    def check_hyperdrive(self, hyperdrive_config: Any) -> None:
        """Raises unless the config is a HyperDriveConfig."""
        ...

    def submit_hyperdrive(
        self, job: JobSpec | RunPlan, hyperdrive_config: Any, *, submission_id: str | None = None
    ) -> RunRef:
        """Submits the config around the job."""
        ...


def submit_to_azure_if_needed(
    compute_cluster_name: str = "",
    entry_script: PathOrString | None = None,
    aml_workspace: Any = None,
    workspace_config_file: PathOrString | None = None,
    ml_client: Any = None,
    snapshot_root_directory: PathOrString | None = None,
    script_params: list[str] | None = None,
    conda_environment_file: PathOrString | None = None,
    aml_environment_name: str = "",
    experiment_name: str | None = None,
    environment_variables: Mapping[str, str | SecretReference] | None = None,
    pip_extra_index_url: str = "",
    private_pip_wheel_path: PathOrString | None = None,
    docker_base_image: str = "",
    docker_shm_size: str = "",
    ignored_folders: list[PathOrString] | None = None,
    default_datastore: str = "",
    input_datasets: list[str | DatasetConfig] | None = None,
    output_datasets: list[str | DatasetConfig] | None = None,
    num_nodes: int = 1,
    wait_for_completion: bool = False,
    wait_for_completion_show_output: bool = False,
    max_run_duration: str = "",
    submit_to_azureml: bool | None = None,
    tags: dict[str, str] | None = None,
    after_submission: Callable[[Any], None] | None = None,
    hyperdrive_config: Any = None,
    hyperparam_args: dict[str, Any] | None = None,
    create_output_folders: bool = True,
    strictly_aml_v1: bool = False,
    *,
    submit_to_local_backend: bool | None = None,
    sweep: SweepSpec | None = None,
    display_name: str = "",
    exit_on_completion: bool = True,
    wait_timeout_seconds: float | None = None,
) -> Any:
    """Runs the script here, or submits it to AzureML or the local backend and exits (hi-ml's).

    Call it first in a script, before parsing arguments. What it does:

    - Inside a job (submitted by any backend): returns the run's `AzureRunInfo` at once, before
      looking at any flag; its `run` is `RUN_CONTEXT`, as in hi-ml.
    - No flag: the script goes on in this process. `environment_variables` (over hi-ml's
      defaults) are set in `os.environ`; `outputs/` and `logs/` are created in the current
      folder (not with `create_output_folders=False`); each input is its `local_folder`, else
      the dataset brought from the workspace (`resolve_backend`'s order), else None with a log
      line when the workspace has no such dataset; each output is its `local_folder` or None.
    - `--azureml` on the command line (or `submit_to_azureml=True`): submitted to AzureML
      (SDK v1, whatever `strictly_aml_v1` says); `--himl-local` (or
      `submit_to_local_backend=True`): submitted to the local backend (`$HIML_HOME`, else
      `./.himl`; or `aml_workspace` when it is a `LocalBackend`). The job runs this script with
      its arguments (without the flag); everything is checked first (cluster, datasets,
      snapshot), then it is submitted, `most_recent_run.txt` is written in the current folder
      (and beside the script), and the run's id and link are printed. With
      `wait_for_completion` it waits for the run (and a sweep's trials), streaming its log with
      `wait_for_completion_show_output`; a run that does not complete raises `JobFailedError`.
      Then `after_submission(run)` is called, and the process exits with 0 (`SystemExit`), or,
      with `exit_on_completion=False`, the run is returned.

    Args:
        compute_cluster_name: The cluster to run on ("" is the local backend's default).
        entry_script: The script the job runs (default: the running one, `sys.argv[0]`).
        aml_workspace: An `azureml.core.Workspace`, or a backend to use as it is.
        workspace_config_file: An AzureML `config.json`.
        ml_client: hi-ml's SDK v2 client: refused, there is no SDK v2 backend yet.
        snapshot_root_directory: The folder the job gets (default: the current folder).
        script_params: The job's arguments (default: this command line's, without the flags).
        conda_environment_file: The job's conda environment (AzureML; default: the nearest
            `environment.yml` upward).
        aml_environment_name: A registered AzureML environment to use instead.
        experiment_name: The experiment ($HIML_EXPERIMENT_NAME wins; default: the script's name).
        environment_variables: Variables for the job, and for this process in a plain run.
            A value may be a `SecretReference("NAME")`: the job (local backend) gets the
            value of NAME in this process's environment, and no record holds it.
        pip_extra_index_url: An extra package index (AzureML).
        private_pip_wheel_path: A wheel to install in the job's environment (AzureML).
        docker_base_image: The environment's base image (AzureML).
        docker_shm_size: The job's shared memory, e.g. "100g" (AzureML).
        ignored_folders: Folders of the snapshot root the job does not get.
        default_datastore: The datastore of datasets given by name.
        input_datasets: Datasets the script reads (names or `DatasetConfig`s).
        output_datasets: Datasets the script writes (names or `DatasetConfig`s).
        num_nodes: Machines for a distributed job.
        wait_for_completion: Wait for the run to end before exiting.
        wait_for_completion_show_output: Print the run's log while waiting.
        max_run_duration: The run's longest duration, e.g. "3.5h" ("" is none).
        submit_to_azureml: Submit to AzureML; None reads `--azureml` from the command line.
        tags: The run's tags (None: `{"commandline_args": <the job's arguments>}`).
        after_submission: Called with the run (on AzureML the azureml `Run`) once submitted,
            after the wait when waiting.
        hyperdrive_config: An AzureML `HyperDriveConfig`: the job runs as its trials (AzureML
            only).
        hyperparam_args: hi-ml's SDK v2 sweep settings: refused; give `sweep=` instead.
        create_output_folders: Create `outputs/` and `logs/` in a plain run.
        strictly_aml_v1: Accepted; AzureML runs use SDK v1 either way.
        submit_to_local_backend: Submit to the local backend; None reads `--himl-local`.
        sweep: A `SweepSpec`: the job runs as its trials, on any backend.
        display_name: The run's display name.
        exit_on_completion: Exit after submitting (hi-ml's way); False returns the run.
        wait_timeout_seconds: The wait's deadline (default: `max_run_duration` plus an hour,
            else the backend's, 7 days); the run goes on after it, `JobTimeoutError` is raised.

    Returns:
        The run's `AzureRunInfo` (in a job, or in a plain run), or the run, when submitted with
        `exit_on_completion=False`.

    Raises:
        SystemExit: With 0, after submitting (unless `exit_on_completion=False`); with 130
            when Ctrl-C stops the wait (the run goes on; the message says how to find it).
        InvalidInputError: Before anything happens, for both flags, a `submit_to_*` that
            is not a bool or None, `ml_client`, `hyperparam_args`, both `hyperdrive_config`
            and `sweep`, a `hyperdrive_config` on a backend without HyperDrive, an
            `after_submission` that cannot be called, one string as `script_params` or
            `ignored_folders`, or a job the spec or backend refuses (with `--himl-local`, a
            missing or outside entry script before the local workspace is made).
        ComputeNotFoundError: An unknown cluster, before anything is submitted.
        DatasetNotFoundError: An input dataset that does not exist, likewise.
        JobFailedError: A waited-for run (or one of its trials) did not complete.
        JobTimeoutError: The wait reached its deadline.
    """
    _refuse_what_cannot_be_done(ml_client, hyperparam_args, hyperdrive_config, sweep)
    if after_submission is not None and not callable(after_submission):
        # Called once the run is submitted: found out then, the run would be queued already.
        raise InvalidInputError(
            f"after_submission must be a function taking the run, not {after_submission!r}"
        )
    if wait_timeout_seconds is not None and not is_seconds(wait_timeout_seconds, zero_ok=False):
        raise InvalidInputError(
            "wait_timeout_seconds must be a positive, finite number of seconds, not "
            f"{wait_timeout_seconds!r}; leave it None for max_run_duration plus an hour"
        )
    inputs = as_dataset_configs(
        [] if input_datasets is None else input_datasets,
        parameter="input_datasets",
        default_datastore=default_datastore,
    )
    outputs = as_dataset_configs(
        [] if output_datasets is None else output_datasets,
        parameter="output_datasets",
        default_datastore=default_datastore,
    )
    if in_job_platform() is not None:
        # Its run is RUN_CONTEXT (azureml's own Run on AzureML), so that `run_info.run.log(...)`
        # and the Run's other methods work on every backend.
        return get_run_info()
    target = submission_target(
        sys.argv,
        submit_to_azureml=submit_to_azureml,
        submit_to_local_backend=submit_to_local_backend,
    )
    if target is Target.IN_THIS_PROCESS:
        return plain_run_info(
            inputs,
            outputs,
            environment_variables=environment_variables_for_runs(environment_variables),
            create_output_folders=create_output_folders,
            dataset_backend=lambda: resolve_backend(aml_workspace, workspace_config_file),
        )
    arguments = job_arguments(script_params, sys.argv)
    root = Path(snapshot_root_directory or Path.cwd()).absolute()
    script, module = entry_point(entry_script, root)
    spec = JobSpec(
        entry_script=script,
        module=module,
        args=arguments,
        snapshot_root=root,
        ignored_folders=ignored_folders_in(root, ignored_folders),
        conda_environment_file=conda_environment_file,
        docker_base_image=docker_base_image,
        docker_shm_size=docker_shm_size,
        pip_extra_index_url=pip_extra_index_url,
        private_pip_wheel_path=private_pip_wheel_path,
        environment_name=aml_environment_name,
        compute=compute_cluster_name,
        num_nodes=num_nodes,
        input_datasets=inputs,
        output_datasets=outputs,
        environment_variables=environment_variables_for_runs(environment_variables),
        tags={COMMANDLINE_TAG: " ".join(arguments)} if tags is None else tags,
        # hi-ml's order: the variable wins over the parameter; "" is the script's name.
        experiment=os.environ.get(EXPERIMENT_NAME_VARIABLE) or experiment_name or "",
        display_name=display_name,
        max_run_duration=max_run_duration or None,
    )
    backend = _backend_for(target, spec, aml_workspace, workspace_config_file, hyperdrive_config)
    if target is Target.AZUREML and not strictly_aml_v1:
        logger.info("submitting with AzureML SDK v1: himl-tasks has no SDK v2 backend yet")
    ref = _check_and_submit(backend, spec, hyperdrive_config, sweep)
    announce_queued_run(backend, ref)
    if wait_for_completion:
        try:
            wait_for_run_and_children(
                backend,
                ref,
                show_output=wait_for_completion_show_output,
                timeout_seconds=_wait_deadline(spec, wait_timeout_seconds),
            )
        except KeyboardInterrupt:
            if not exit_on_completion:
                raise
            # Ctrl-C stopped the wait, which said the run goes on: the process ends as a
            # shell's interrupted command does (128 + SIGINT), without a traceback.
            raise SystemExit(INTERRUPTED_EXIT_CODE) from None
    run = run_object(backend, ref) if after_submission or not exit_on_completion else None
    if after_submission is not None:
        after_submission(run)
    if exit_on_completion:
        raise SystemExit(0)
    return run


def _refuse_what_cannot_be_done(
    ml_client: Any, hyperparam_args: Mapping[str, Any] | None, hyperdrive_config: Any, sweep: Any
) -> None:
    if ml_client is not None:
        raise InvalidInputError(
            "himl-tasks submits with AzureML SDK v1 and has no SDK v2 backend yet, so it cannot "
            "use ml_client: pass aml_workspace (an azureml.core.Workspace) or a config.json as "
            "workspace_config_file instead"
        )
    if hyperparam_args:
        raise InvalidInputError(
            "hyperparam_args are hi-ml's settings for an AzureML SDK v2 sweep, which himl-tasks "
            "does not submit: describe the sweep as sweep=SweepSpec(...) (any backend), or give "
            "an AzureML HyperDriveConfig as hyperdrive_config"
        )
    if hyperdrive_config is not None and sweep is not None:
        raise InvalidInputError(
            "both hyperdrive_config and sweep are given: a job runs as one sweep; give one"
        )
    if sweep is not None and not isinstance(sweep, SweepSpec):
        raise InvalidInputError(f"sweep must be a SweepSpec, not {type(sweep).__name__}")


def _check_before_the_workspace(spec: JobSpec) -> None:
    """The plan's checks that need no backend, made before a local workspace is."""
    spec.experiment_name()
    if spec.entry_script is not None:
        entry_script_in_root(spec.snapshot_root, spec.entry_script)


def _backend_for(
    target: Target,
    spec: JobSpec,
    aml_workspace: Any,
    workspace_config_file: Any,
    hyperdrive_config: Any,
) -> Backend:
    """The backend to submit to; what can be refused is refused before the local one is made.

    Making a `LocalBackend` creates its workspace folder (`./.himl` by default): a job
    refused for its arguments, its script or its snapshot root leaves nothing behind.
    """
    if target is Target.AZUREML:
        backend = azureml_workspace.azureml_backend(aml_workspace, workspace_config_file)
        _refuse_hyperdrive_without_it(type(backend), hyperdrive_config)
        return backend
    given = aml_workspace if isinstance(aml_workspace, LocalBackend) else None
    _refuse_hyperdrive_without_it(type(given) if given else LocalBackend, hyperdrive_config)
    if given is not None:
        return given
    _check_before_the_workspace(spec)
    return LocalBackend()


def _refuse_hyperdrive_without_it(backend_type: type[Backend], hyperdrive_config: Any) -> None:
    # A capability, not a backend's name: only a backend with HyperDrive offers it.
    if hyperdrive_config is not None and not issubclass(backend_type, HyperDriveBackend):
        raise InvalidInputError(
            f"hyperdrive_config is an AzureML HyperDrive sweep, which {backend_type.__name__} "
            f"cannot run: submit with {AZUREML_FLAG}, or describe the sweep as "
            "sweep=SweepSpec(...), which every backend runs"
        )


def _check_and_submit(
    backend: Backend, spec: JobSpec, hyperdrive_config: Any, sweep: SweepSpec | None
) -> RunRef:
    """Checks everything before anything is written or submitted, then submits once."""
    hyperdrive = backend if isinstance(backend, HyperDriveBackend) else None
    if hyperdrive_config is not None and hyperdrive is not None:
        hyperdrive.check_hyperdrive(hyperdrive_config)
    if sweep is not None:
        backend.check_sweep(sweep)
    plan = backend.plan(spec)
    if hyperdrive_config is not None and hyperdrive is not None:
        ref = hyperdrive.submit_hyperdrive(plan, hyperdrive_config)
    elif sweep is not None:
        ref = backend.submit_sweep(plan, sweep)
    else:
        ref = backend.submit(plan)
    # hi-ml writes it in the current folder (the backend wrote it beside the script).
    write_most_recent_run(Path.cwd(), ref)
    return ref


def _wait_deadline(spec: JobSpec, wait_timeout_seconds: float | None) -> float | None:
    if wait_timeout_seconds is not None:
        return wait_timeout_seconds
    if spec.max_run_duration is not None:
        return spec.max_run_duration + WAIT_MARGIN_SECONDS
    return None  # the backend's default deadline
