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

import inspect
import logging
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from himl_tasks.backends.base import Backend
from himl_tasks.backends.local.backend import LocalBackend
from himl_tasks.backends.queued_run import announce_queued_run, wait_for_run_and_children
from himl_tasks.backends.workspace_discovery import AzureMLSdk
from himl_tasks.datasets import DatasetConfig, as_dataset_configs
from himl_tasks.errors import InvalidInputError
from himl_tasks.himl import azureml_workspace
from himl_tasks.himl.azureml_workspace import sdk_of
from himl_tasks.himl.command_line import Target, submission_target
from himl_tasks.himl.himl_job_spec import (
    PathOrString,
    entry_point,
    environment_variables_for_runs,
    ignored_folders_in,
)
from himl_tasks.himl.hyperparam_args import sweep_from_hyperparam_args
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
    after_submission: Callable[[Any], None] | Callable[[Any, Any], None] | None = None,
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
    - `--azureml` on the command line (or `submit_to_azureml=True`): submitted to AzureML, as
      hi-ml 0.5 does with SDK v2 (azure-ai-ml) by default and SDK v1 (azureml-core) with
      `strictly_aml_v1=True`; a workspace object given says its own SDK (`ml_client` or an
      `MLClient` is v2's, an `azureml.core.Workspace` v1's). `--himl-local` (or
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
        aml_workspace: An `azureml.core.Workspace` (SDK v1), or a backend to use as it is.
        workspace_config_file: An AzureML `config.json`.
        ml_client: An `azure.ai.ml.MLClient`: the workspace, on SDK v2 (not with
            `aml_workspace` or `strictly_aml_v1=True`).
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
        after_submission: Called once submitted (after the wait when waiting) with the run (on
            SDK v1 the azureml `Run`, else a `BackendRun`), or, when it takes two arguments as
            hi-ml 0.5's SDK v2 callbacks do, with the run and the `MLClient` (None off v2).
        hyperdrive_config: An AzureML `HyperDriveConfig`: the job runs as its trials (SDK v1
            only: with `strictly_aml_v1=True`; refused on SDK v2, where hi-ml 0.5 drops it).
        hyperparam_args: hi-ml 0.5's SDK v2 sweep settings (`create_grid_hyperparam_args_v2`
            and the like): the job runs as their trials, read as a `SweepSpec`
            (`sweep_from_hyperparam_args`), on any backend; with `strictly_aml_v1=True` as
            a HyperDrive run (hi-ml 0.5 ignores them there).
        create_output_folders: Create `outputs/` and `logs/` in a plain run.
        strictly_aml_v1: Submit to AzureML with SDK v1 (azureml-core) instead of SDK v2.
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
            is not a bool or None, `ml_client` with `aml_workspace` or `strictly_aml_v1=True`
            (or an `MLClient` as `aml_workspace` with it), more than one of
            `hyperdrive_config`, `hyperparam_args` and `sweep`, `hyperparam_args` a sweep
            cannot carry, a `hyperdrive_config` on SDK v2 or a backend without HyperDrive, an
            `after_submission` that cannot be called, one string as `script_params` or
            `ignored_folders`, or a job the spec or backend refuses (with `--himl-local`, a
            missing or outside entry script before the local workspace is made).
        ComputeNotFoundError: An unknown cluster, before anything is submitted.
        DatasetNotFoundError: An input dataset that does not exist, likewise.
        JobFailedError: A waited-for run (or one of its trials) did not complete.
        JobTimeoutError: The wait reached its deadline.
    """
    hyperparam_args = hyperparam_args or None  # hi-ml's test: an empty dict is no sweep
    _refuse_what_cannot_be_done(
        ml_client, aml_workspace, hyperparam_args, hyperdrive_config, sweep, strictly_aml_v1
    )
    # ml_client is the workspace on SDK v2; a workspace object says its SDK, else the flag does.
    workspace = ml_client if ml_client is not None else aml_workspace
    sdk = sdk_of(workspace, "v1" if strictly_aml_v1 else "v2")
    if hyperparam_args is not None:
        sweep = sweep_from_hyperparam_args(hyperparam_args)
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
            dataset_backend=lambda: resolve_backend(workspace, workspace_config_file, sdk=sdk),
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
    backend = _backend_for(target, spec, workspace, workspace_config_file, hyperdrive_config, sdk)
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
        _call_after_submission(after_submission, run, backend)
    if exit_on_completion:
        raise SystemExit(0)
    return run


def _refuse_what_cannot_be_done(
    ml_client: Any,
    aml_workspace: Any,
    hyperparam_args: Mapping[str, Any] | None,
    hyperdrive_config: Any,
    sweep: Any,
    strictly_aml_v1: bool,
) -> None:
    if ml_client is not None:
        if strictly_aml_v1:
            raise InvalidInputError(
                "ml_client is an AzureML SDK v2 client, and strictly_aml_v1=True submits with "
                "SDK v1: drop strictly_aml_v1 to submit with SDK v2, or pass aml_workspace (an "
                "azureml.core.Workspace) or workspace_config_file instead of ml_client"
            )
        if aml_workspace is not None:
            raise InvalidInputError(
                "both ml_client and aml_workspace are given: give one workspace (ml_client, an "
                "MLClient, submits with SDK v2; aml_workspace with strictly_aml_v1=True, SDK v1)"
            )
        if not type(ml_client).__module__.startswith("azure.ai.ml"):
            raise InvalidInputError(
                f"ml_client must be an azure.ai.ml MLClient, not {type(ml_client).__name__}"
            )
    if strictly_aml_v1 and sdk_of(aml_workspace, "v1") == "v2":
        raise InvalidInputError(
            "aml_workspace is an azure.ai.ml MLClient (AzureML SDK v2), and strictly_aml_v1=True "
            "submits with SDK v1: drop strictly_aml_v1, or pass an azureml.core.Workspace"
        )
    given = [
        name
        for name, value in (
            ("hyperdrive_config", hyperdrive_config),
            ("hyperparam_args", hyperparam_args),
            ("sweep", sweep),
        )
        if value is not None
    ]
    if len(given) > 1:
        raise InvalidInputError(
            f"{' and '.join(given)} are given: each describes a sweep, and a job runs as one; "
            "give one"
        )
    if sweep is not None and not isinstance(sweep, SweepSpec):
        raise InvalidInputError(f"sweep must be a SweepSpec, not {type(sweep).__name__}")
    if hyperparam_args is not None and not isinstance(hyperparam_args, Mapping):
        raise InvalidInputError(
            f"hyperparam_args must be a dict (hi-ml 0.5's SDK v2 sweep settings), not "
            f"{type(hyperparam_args).__name__}"
        )


def _refuse_v1_only_on_v2(sdk: AzureMLSdk, hyperdrive_config: Any) -> None:
    """What only SDK v1 can submit, refused before signing in to submit with SDK v2.

    hi-ml 0.5 drops `hyperdrive_config` on SDK v2 without a word (health_azure/himl.py,
    `submit_to_azure_if_needed` passes it only to SDK v1's `submit_run`), which would run one
    job instead of a sweep; here it is an error that says what to do.
    """
    if hyperdrive_config is not None and sdk == "v2":
        raise InvalidInputError(
            "hyperdrive_config is an AzureML SDK v1 HyperDrive sweep, and --azureml submits with "
            "SDK v2 (as hi-ml 0.5): pass strictly_aml_v1=True to submit it with SDK v1, or give "
            "the sweep as hyperparam_args (hi-ml 0.5's SDK v2 settings) or sweep=SweepSpec(...)"
        )


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
    sdk: AzureMLSdk,
) -> Backend:
    """The backend to submit to; what can be refused is refused before the local one is made.

    Making a `LocalBackend` creates its workspace folder (`./.himl` by default): a job
    refused for its arguments, its script or its snapshot root leaves nothing behind. On
    AzureML, what SDK v2 cannot submit is refused before signing in.
    """
    if target is Target.AZUREML:
        if not isinstance(aml_workspace, Backend):  # a backend given is used as it is
            _refuse_v1_only_on_v2(sdk, hyperdrive_config)
        backend = azureml_workspace.azureml_backend(aml_workspace, workspace_config_file, sdk=sdk)
        logger.info("submitting to %r", backend)
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
            f"hyperdrive_config is an AzureML SDK v1 HyperDrive sweep, which "
            f"{backend_type.__name__} cannot run: submit with {AZUREML_FLAG} and "
            "strictly_aml_v1=True, or describe the sweep as sweep=SweepSpec(...), which every "
            "backend runs"
        )


def _call_after_submission(
    after_submission: Callable[..., Any], run: Any, backend: Backend
) -> None:
    """Calls it as hi-ml 0.5 does: `(run)`, or `(job, ml_client)` when it needs two arguments.

    hi-ml 0.5 calls `after_submission(run)` on SDK v1 and `after_submission(job, ml_client)` on
    SDK v2 (health_azure/himl.py, `submit_to_azure_if_needed`); a function written for either
    works here, on any backend. The run is the backend's run object (a `BackendRun` on SDK v2,
    not an azure.ai.ml `Job`); `ml_client` is the v2 backend's `MLClient`, else None.
    """
    if _takes_two_arguments(after_submission):
        after_submission(run, getattr(getattr(backend, "service", None), "ml_client", None))
    else:
        after_submission(run)


def _takes_two_arguments(function: Callable[..., Any]) -> bool:
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):  # a builtin without a signature: hi-ml's one argument
        return False
    try:
        signature.bind(None, None)
    except TypeError:
        return False
    try:
        signature.bind(None)
    except TypeError:
        return True
    return False  # takes one or two (a default): hi-ml's SDK v1 form, one


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
