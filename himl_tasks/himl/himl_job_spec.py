"""hi-ml's `submit_to_azure_if_needed` parameters, turned into this project's `JobSpec`."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from himl_tasks.datasets import DatasetConfig
from himl_tasks.errors import InvalidInputError
from himl_tasks.job_spec import (
    COMMANDLINE_TAG,
    EXPERIMENT_NAME_VARIABLE,
    JobSpec,
    check_environment_variables,
)
from himl_tasks.job_variables import DEFAULT_ENVIRONMENT_VARIABLES
from himl_tasks.secret_reference import SecretReference

PathOrString = Path | str


def environment_variables_for_runs(
    given: Mapping[str, str | SecretReference] | None,
) -> dict[str, str | SecretReference]:
    """hi-ml's default variables with the user's over them, checked as a job's are.

    A value may be a `SecretReference`: a submitted job gets the secret and no record of it
    holds the value; a plain run reads it from this process's environment.

    Raises:
        InvalidInputError: For a name a process cannot have, a value that is not text (or a
            `SecretReference`), a NUL byte, or a variable the backends set in every job.
    """
    given = {} if given is None else given
    check_environment_variables(given)
    return {**DEFAULT_ENVIRONMENT_VARIABLES, **given}


def himl_job_spec(
    *,
    args: Sequence[str],
    compute_cluster_name: str = "",
    entry_script: PathOrString | None = None,
    snapshot_root_directory: PathOrString | None = None,
    conda_environment_file: PathOrString | None = None,
    aml_environment_name: str = "",
    experiment_name: str | None = None,
    environment_variables: Mapping[str, str | SecretReference] | None = None,
    pip_extra_index_url: str = "",
    private_pip_wheel_path: PathOrString | None = None,
    docker_base_image: str = "",
    docker_shm_size: str = "",
    ignored_folders: Sequence[PathOrString] | None = None,
    input_datasets: Sequence[DatasetConfig] = (),
    output_datasets: Sequence[DatasetConfig] = (),
    num_nodes: int = 1,
    max_run_duration: str = "",
    tags: Mapping[str, str] | None = None,
    display_name: str = "",
) -> JobSpec:
    """The job `submit_to_azure_if_needed` submits, with hi-ml's defaults.

    - the entry script is the running script (`sys.argv[0]`, from the current folder), or,
      when it was started as `python -m package.module` from the snapshot root, that module
      (its relative imports need its package; hi-ml ran its file as a script); a relative
      `entry_script` given is taken from the snapshot root, as hi-ml sends it;
    - the snapshot root is the current folder;
    - the experiment is `$HIML_EXPERIMENT_NAME`, else `experiment_name`, else the script's
      name (hi-ml's order: the variable wins over the parameter);
    - the variables are hi-ml's defaults with the user's over them;
    - tags None are `{"commandline_args": <the job's arguments>}`; `{}` sets none;
    - `max_run_duration` "" is no limit; an `ignored_folders` entry inside the snapshot root
      may be absolute.

    Without a conda file or environment name, the AzureML backend looks for `environment.yml`
    from the script's folder upward (stopping at PYTHONPATH), as hi-ml does from the current
    folder.

    Raises:
        InvalidInputError: For anything the spec refuses (see `JobSpec`).
    """
    root = Path(snapshot_root_directory or Path.cwd()).absolute()
    running = Path(sys.argv[0]).absolute()
    module = _running_module(running, root) if entry_script is None else None
    script = None if module else running if entry_script is None else Path(entry_script)
    if tags is None:
        tags = {COMMANDLINE_TAG: " ".join(args)}
    return JobSpec(
        entry_script=script,
        module=module,
        args=args,
        snapshot_root=root,
        ignored_folders=_ignored_folders(root, ignored_folders),
        conda_environment_file=conda_environment_file,
        docker_base_image=docker_base_image,
        docker_shm_size=docker_shm_size,
        pip_extra_index_url=pip_extra_index_url,
        private_pip_wheel_path=private_pip_wheel_path,
        environment_name=aml_environment_name,
        compute=compute_cluster_name,
        num_nodes=num_nodes,
        input_datasets=input_datasets,
        output_datasets=output_datasets,
        environment_variables=environment_variables_for_runs(environment_variables),
        tags=tags,
        experiment=os.environ.get(EXPERIMENT_NAME_VARIABLE) or experiment_name or "",
        display_name=display_name,
        max_run_duration=max_run_duration or None,
    )


def _running_module(running: Path, root: Path) -> str | None:
    """The module this process was started as (`python -m pkg.train`), if the root holds it.

    `__main__.__spec__` names it; it counts only when the running file is where `python -m`
    in the snapshot root finds that name (`<root>/pkg/train.py`), so a script started by
    path, or a module from elsewhere (`python -m pytest`), stays a script.
    """
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    name = getattr(spec, "name", None)
    if not isinstance(name, str) or not name:
        return None
    if running != root.joinpath(*name.split(".")).with_suffix(".py"):
        return None
    return name.removesuffix(".__main__")  # `python -m pkg` runs pkg/__main__.py


def _ignored_folders(root: Path, folders: Sequence[PathOrString] | None) -> list[str]:
    if isinstance(folders, str | bytes | os.PathLike):
        # One folder is not a list of them: "data" would ignore "d", "a" and "t".
        raise InvalidInputError(
            f"ignored_folders must be a list of folders, e.g. ['data'], not {folders!r}"
        )
    return [_inside(root, folder) for folder in folders or ()]


def _inside(root: Path, folder: PathOrString) -> str:
    """An ignored folder as the snapshot root's relative name (hi-ml writes them as given)."""
    path = Path(folder)
    relative = path.relative_to(root) if path.is_relative_to(root) else path
    if relative.is_absolute() or ".." in relative.parts:
        raise InvalidInputError(
            f"ignored_folders entry {path} is outside the snapshot root {root}: name "
            "folders inside it (relative names are taken from it)"
        )
    return relative.as_posix()
