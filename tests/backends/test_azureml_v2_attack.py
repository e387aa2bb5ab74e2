"""Hostile inputs to the AzureML v2 backend: each refused with one clear error, before anything.

The backend talks to the v2 service stand-in (azureml_v2_service.py); storage is Azurite.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from himl_tasks.backends.azureml_v2 import AzureMLV2Backend
from himl_tasks.datasets import DatasetConfig
from himl_tasks.errors import ConfigurationError, InvalidInputError
from himl_tasks.job_spec import JobSpec
from tests.backends.azureml_v2_service import FakeAzureMLV2Service
from tests.backends.conftest import azureml_job, write_script


@pytest.mark.parametrize(
    "conda_text",
    [
        pytest.param("name: [unclosed\n", id="not-yaml"),
        pytest.param("\x00\x01", id="control-characters"),
        pytest.param("", id="empty"),
        pytest.param("# only a comment\n", id="only-a-comment"),
    ],
)
def test_a_conda_file_that_is_no_yaml_mapping_is_refused_before_any_side_effect(
    aml_v2: AzureMLV2Backend,
    aml_v2_service: FakeAzureMLV2Service,
    project: Path,
    tmp_path: Path,
    conda_text: str,
) -> None:
    # An input whose data asset does not exist yet but whose folder does: planning would
    # register its version 1, a side effect that must not happen for a job refused anyway.
    source = tmp_path / "source"
    source.mkdir()
    (source / "a.txt").write_text("a")
    aml_v2.datastore().upload_folder(source, "fresh")
    spec = azureml_job(project, "print('hi')\n", input_datasets=[DatasetConfig("fresh")])
    write_script(project, "environment.yml", conda_text)

    with pytest.raises(ConfigurationError, match="environment.yml"):
        aml_v2.check_spec(spec)
    with pytest.raises(ConfigurationError, match="environment.yml"):
        aml_v2.submit(spec)

    assert aml_v2_service.create_requests == 0
    assert aml_v2_service.environments == {} and aml_v2_service.data_assets == {}


def test_more_nodes_than_the_cluster_can_ever_have_is_refused_before_anything_is_sent(
    aml_v2: AzureMLV2Backend, aml_v2_service: FakeAzureMLV2Service, project: Path
) -> None:
    # The stand-in's clusters scale to 4 nodes (AmlCompute's max_instances): a job of 5
    # nodes would wait for nodes that never come.
    spec = azureml_job(project, "print('hi')\n", num_nodes=5)

    with pytest.raises(InvalidInputError, match="5 nodes.*'cpu-cluster'.*at most 4"):
        aml_v2.check_spec(spec)
    with pytest.raises(InvalidInputError, match="5 nodes"):
        aml_v2.submit(spec)

    assert aml_v2_service.create_requests == 0 and aml_v2_service.environments == {}
    aml_v2.submit(dataclasses.replace(spec, num_nodes=4))
    assert aml_v2_service.create_requests == 1


@pytest.mark.parametrize("environment", ["missing-env", "missing-env:3", "a b:1"])
def test_an_environment_that_is_not_registered_is_refused_before_any_side_effect(
    aml_v2: AzureMLV2Backend,
    aml_v2_service: FakeAzureMLV2Service,
    project: Path,
    tmp_path: Path,
    environment: str,
) -> None:
    source = tmp_path / "source"
    source.mkdir()
    (source / "a.txt").write_text("a")
    aml_v2.datastore().upload_folder(source, "fresh")
    spec = azureml_job(
        project,
        "print('hi')\n",
        environment_name=environment,
        input_datasets=[DatasetConfig("fresh")],
    )

    with pytest.raises(ConfigurationError, match="no environment"):
        aml_v2.check_spec(spec)
    with pytest.raises(ConfigurationError, match="no environment"):
        aml_v2.submit(spec)

    assert aml_v2_service.create_requests == 0 and aml_v2_service.data_assets == {}


@pytest.mark.parametrize("size", ["banana", "16", "0g", "-1g", "16 g", "1.5g", "16gb"])
def test_a_shared_memory_size_azureml_cannot_read_is_refused_before_anything_is_sent(
    aml_v2: AzureMLV2Backend, aml_v2_service: FakeAzureMLV2Service, project: Path, size: str
) -> None:
    spec = azureml_job(project, "print('hi')\n", docker_shm_size=size)

    with pytest.raises(InvalidInputError, match="docker_shm_size"):
        aml_v2.submit(spec)

    assert aml_v2_service.create_requests == 0
    aml_v2.submit(dataclasses.replace(spec, docker_shm_size="16G"))
    assert aml_v2_service.submitted[-1][0].resources.shm_size == "16G"


def test_an_extra_package_index_without_a_conda_file_is_refused_not_dropped(
    aml_v2: AzureMLV2Backend, aml_v2_service: FakeAzureMLV2Service, project: Path
) -> None:
    # An image-only environment installs no pip packages: the index was silently dropped.
    write_script(project, "job.py", "print('hi')\n")
    spec = JobSpec(
        entry_script="job.py",
        snapshot_root=project,
        compute="cpu-cluster",
        docker_base_image="python:3.11",
        pip_extra_index_url="https://pkgs.example.com/simple",
    )

    with pytest.raises(InvalidInputError, match="pip_extra_index_url"):
        aml_v2.submit(spec)

    assert aml_v2_service.create_requests == 0 and aml_v2_service.environments == {}
