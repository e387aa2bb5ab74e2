"""The environment a v2 job runs in: registered, or built and registered once per content.

An environment built from the job's conda file and docker image is named `HIML-<hash>` of
what decides its image (the conda specification as sent, the image), version 1: an unchanged
environment is found and reused instead of being registered and its image built again.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from himl_tasks.backends.azureml_common.environment_naming import (
    CONDA_FILE_NAME,
    environment_name,
    find_conda_file,
)
from himl_tasks.backends.azureml_v2 import sdk
from himl_tasks.backends.azureml_v2.service import AzureMLV2Service
from himl_tasks.errors import ConfigurationError, InputPathNotFoundError, InvalidInputError
from himl_tasks.job_spec import JobSpec

ENVIRONMENT_VERSION = "1"
# AzureML's own base image for jobs that bring a conda file and no image ("Azure Machine
# Learning base images", Azure/AzureML-Containers: openmpi4.1.0-ubuntu22.04).
DEFAULT_IMAGE = "mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04:latest"


def check_environment(spec: JobSpec, *, python_path: str = "") -> None:
    """Raises unless the job names an environment, or one can be built for it (no side effect).

    The environment to build is built here, offline, so a conda file that is no YAML mapping
    is refused before planning registers an input's data asset.

    Raises:
        ConfigurationError: No environment name, conda file or docker image; or a conda file
            that is not a YAML mapping.
        InvalidInputError: A given conda file is not a file, a private wheel is asked for, or
            an extra package index without a conda file.
        InputPathNotFoundError: A given conda file does not exist.
    """
    if spec.environment_name:
        return
    if spec.private_pip_wheel_path is not None:
        raise InvalidInputError(
            "private_pip_wheel_path is not supported by the AzureML v2 backend: publish the "
            "wheel to a package index and set pip_extra_index_url, register an environment "
            "that has it (environment_name), or submit with AzureMLV1Backend"
        )
    build_v2_environment(spec, python_path=python_path)


def environment_reference(
    spec: JobSpec, service: AzureMLV2Service, *, python_path: str = ""
) -> str:
    """The job's environment as a job names it: `azureml:<name>:<version>`.

    A named environment (`spec.environment_name`, `name` or `name:version`; the latest
    version when none is given) is used as registered; otherwise the one built from the
    conda file and image is found by its name, or registered.

    Raises:
        ConfigurationError: If the named environment does not exist, or none can be built.
    """
    if spec.environment_name:
        name, _, version = spec.environment_name.partition(":")
        found = service.environment(name, version or None)
        if found is None:
            raise ConfigurationError(
                f"no environment '{spec.environment_name}' is registered in workspace "
                f"'{service.workspace_name}'"
            )
        return f"azureml:{found.name}:{found.version}"
    built = build_v2_environment(spec, python_path=python_path)
    found = service.environment(built.name, built.version)
    if found is None:
        found = service.create_environment(built)
    return f"azureml:{found.name}:{found.version}"


def build_v2_environment(spec: JobSpec, *, python_path: str = "") -> Any:
    """The `Environment` entity a spec asks for (offline), named by its content's hash.

    Raises:
        ConfigurationError: A conda file that is not a YAML mapping (not YAML, empty, a list).
        InvalidInputError: An extra package index for an image without a conda file.
    """
    path = conda_file(spec, python_path, required=not spec.docker_base_image)
    if path is None and spec.pip_extra_index_url:
        raise InvalidInputError(
            "pip_extra_index_url is used by the pip packages of a conda file, and this job "
            "has only a docker image: add a conda file (conda_environment_file, or "
            f"{CONDA_FILE_NAME} beside the script), or build the image with the packages"
        )
    image = spec.docker_base_image or DEFAULT_IMAGE
    with sdk.quiet():
        # The SDK reads the conda file (YAML) into a mapping, as it would send it; text that
        # is not YAML is its ValidationException.
        try:
            environment = sdk.entities().Environment(
                name="unnamed",
                version=ENVIRONMENT_VERSION,
                image=image,
                conda_file=None if path is None else str(path),
                description="Built by himl-tasks from the job's conda file and image",
            )
        except sdk.ml().exceptions.ValidationException as error:
            raise ConfigurationError(
                f"conda file {path} is not YAML: {str(error).strip()}"
            ) from None
    conda = environment.conda_file
    # An empty file (or only comments) reads as None: the job would silently run without
    # the packages the user meant to list.
    if path is not None and not isinstance(conda, dict):
        raise ConfigurationError(f"conda file {path} must hold a YAML mapping")
    if conda is not None and spec.pip_extra_index_url:
        add_pip_option(conda, f"--extra-index-url {spec.pip_extra_index_url}")
    # v1's naming: `HIML-` and a hash of what decides the image (here the conda mapping as
    # sent, in a canonical JSON form).
    environment.name = environment_name(json.dumps(conda, sort_keys=True), image)
    return environment


def conda_file(spec: JobSpec, python_path: str, *, required: bool) -> Path | None:
    """The job's conda file: given, else `environment.yml` beside the script or above.

    Raises:
        ConfigurationError: If `required` and there is none.
        InputPathNotFoundError: A given conda file does not exist.
        InvalidInputError: A given conda file is not a file.
    """
    if spec.conda_environment_file is not None:
        path = Path(spec.conda_environment_file)
        if not path.exists():
            raise InputPathNotFoundError(f"conda_environment_file {path} does not exist")
        if not path.is_file():
            raise InvalidInputError(f"conda_environment_file {path} is not a file")
        return path
    start = spec.entry_script.parent if spec.entry_script is not None else spec.snapshot_root
    found = find_conda_file(start, python_path)
    if found is None and required:
        raise ConfigurationError(
            f"no {CONDA_FILE_NAME} in {start} or its parents; pass conda_environment_file, "
            "docker_base_image, or environment_name for a registered environment"
        )
    return found


def add_pip_option(conda: dict[str, Any], option: str) -> None:
    """Puts a pip option first in the conda specification's pip section (made if missing)."""
    dependencies = conda.setdefault("dependencies", [])
    for item in dependencies:
        if isinstance(item, dict) and "pip" in item:
            item["pip"] = [option, *(item["pip"] or [])]
            return
    dependencies.append({"pip": [option]})
