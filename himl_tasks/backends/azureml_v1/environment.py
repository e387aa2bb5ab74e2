"""The AzureML environment a job runs in: built from the conda file, reused while unchanged."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from himl_tasks.backends.azureml_common.environment_naming import (
    CONDA_FILE_NAME,
    environment_name,
    find_conda_file,
)
from himl_tasks.backends.azureml_v1.service import AzureMLService
from himl_tasks.errors import ConfigurationError, InputPathNotFoundError, InvalidInputError
from himl_tasks.job_spec import JobSpec


def environment_for(spec: JobSpec, service: AzureMLService, *, python_path: str = "") -> Any:
    """The registered environment the job runs in.

    A named environment (`spec.environment_name`) is used as registered. Otherwise one is
    built from the conda file, the docker base image, the pip extra index and the private
    wheel; its name is a hash of all of them, so an unchanged environment is found and reused
    instead of being registered (and its image built) again.

    Raises:
        ConfigurationError: If the named environment does not exist, or no conda file is found.
        InvalidInputError: If a given conda file or wheel does not exist.
    """
    if spec.environment_name:
        found = service.environment(spec.environment_name)
        if found is None:
            raise ConfigurationError(
                f"no environment '{spec.environment_name}' is registered in workspace "
                f"'{service.workspace.name}'"
            )
        return found
    environment = build_environment(spec, service, python_path=python_path)
    return service.environment(environment.name) or service.register_environment(environment)


def build_environment(spec: JobSpec, service: AzureMLService, *, python_path: str = "") -> Any:
    """Builds (offline, but for uploading a private wheel) the environment a spec asks for."""
    from azureml.core import Environment

    conda_file = _conda_file(spec, python_path)
    environment = Environment.from_conda_specification("unnamed", str(conda_file))
    dependencies = environment.python.conda_dependencies
    wheel_digest = ""
    if spec.pip_extra_index_url:
        dependencies.set_pip_option(f"--extra-index-url {spec.pip_extra_index_url}")
    if spec.private_pip_wheel_path is not None:
        wheel = Path(spec.private_pip_wheel_path)
        if not wheel.exists():
            raise InputPathNotFoundError(f"private_pip_wheel_path {wheel} does not exist")
        if not wheel.is_file():
            raise InvalidInputError(f"private_pip_wheel_path {wheel} is not a file")
        wheel_digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
        dependencies.add_pip_package(service.add_private_wheel(wheel))
    if spec.docker_base_image:
        environment.docker.base_image = spec.docker_base_image
    environment.name = environment_name(
        dependencies.serialize_to_string(), environment.docker.base_image or "", wheel_digest
    )
    return environment


def _conda_file(spec: JobSpec, python_path: str) -> Path:
    if spec.conda_environment_file is not None:
        path = Path(spec.conda_environment_file)
        if not path.exists():
            raise InputPathNotFoundError(f"conda_environment_file {path} does not exist")
        if not path.is_file():
            raise InvalidInputError(f"conda_environment_file {path} is not a file")
        return path
    start = spec.entry_script.parent if spec.entry_script is not None else spec.snapshot_root
    found = find_conda_file(start, python_path)
    if found is None:
        raise ConfigurationError(
            f"no {CONDA_FILE_NAME} in {start} or its parents; pass conda_environment_file, "
            "or environment_name for a registered environment"
        )
    return found
