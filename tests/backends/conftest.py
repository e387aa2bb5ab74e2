from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from himl_tasks.backends.azureml_v1 import AzureMLV1Backend
from himl_tasks.backends.azureml_v2 import AzureMLV2Backend
from himl_tasks.backends.local.backend import LocalBackend
from himl_tasks.job_spec import JobSpec
from himl_tasks.testing.azurite import ACCOUNT_NAME, Azurite
from tests.backends.azureml_service import FakeAzureMLService, stand_in_service
from tests.backends.azureml_v2_execution import ExecutingAzureMLV2Service, executing_v2_service
from tests.backends.azureml_v2_service import FakeAzureMLV2Service
from tests.conftest import workspace_containers


@pytest.fixture
def backend(tmp_path: Path) -> LocalBackend:
    return LocalBackend(tmp_path / "workspace")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """The user's project folder: the snapshot root of the test's jobs."""
    folder = tmp_path / "project"
    folder.mkdir()
    return folder


def write_script(project: Path, name: str, body: str) -> Path:
    """Writes a job script (dedented) into the project; returns its path."""
    path = project / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(body), encoding="utf-8")
    return path


def azureml_job(project: Path, body: str, name: str = "job.py", **fields: Any) -> JobSpec:
    """A job AzureML takes: the script `name`, a conda file beside it, the stand-in's cluster.

    `fields` are further JobSpec fields (args, datasets, max_run_duration, ...).
    """
    write_script(project, name, body)
    write_script(project, "environment.yml", "name: job\ndependencies:\n  - python=3.11\n")
    return JobSpec(entry_script=name, snapshot_root=project, compute="cpu-cluster", **fields)


@pytest.fixture
def aml_service(azurite: Azurite) -> Iterator[FakeAzureMLService]:
    """The AzureML service stand-in, its default and artifact stores fresh Azurite containers.

    Its runs follow scripted `Outcome`s; set `aml_service.execute = True` (or use the
    `executing_aml` backend) to have submitted jobs really run.
    """
    yield from stand_in_service(azurite, {"cpu-cluster", "gpu-cluster"})


@pytest.fixture
def aml(aml_service: FakeAzureMLService, azurite: Azurite) -> AzureMLV1Backend:
    """The AzureML backend, talking to the service stand-in; storage is Azurite."""
    return AzureMLV1Backend(service=aml_service, account_urls={ACCOUNT_NAME: azurite.account_url})


@pytest.fixture
def executing_aml(aml_service: FakeAzureMLService, aml: AzureMLV1Backend) -> AzureMLV1Backend:
    """The AzureML backend on a stand-in that executes each submitted job as a subprocess.

    Its watches look at most every half second: the stand-in answers at once, and a job's
    wall time (a few seconds when it imports azureml) is what a test waits for.
    """
    aml_service.execute = True
    aml.max_poll_seconds = 0.5  # type: ignore[misc]  # this backend only
    return aml


@pytest.fixture
def aml_v2_service(azurite: Azurite) -> Iterator[FakeAzureMLV2Service]:
    """The AzureML v2 service stand-in: fresh Azurite containers for its two datastores.

    Its compute clusters: `cpu-cluster` (dedicated) and `spot-cluster` (low priority).
    """
    with workspace_containers(azurite) as names:
        fake = FakeAzureMLV2Service(
            azurite, names, computes={"cpu-cluster": "dedicated", "spot-cluster": "low_priority"}
        )
        try:
            yield fake
        finally:
            fake.shutdown()


@pytest.fixture
def aml_v2(aml_v2_service: FakeAzureMLV2Service, azurite: Azurite) -> AzureMLV2Backend:
    """The AzureML v2 backend, talking to the v2 service stand-in; storage is Azurite."""
    return AzureMLV2Backend(
        service=aml_v2_service, account_urls={ACCOUNT_NAME: azurite.account_url}
    )


@pytest.fixture
def executing_aml_v2_service(azurite: Azurite) -> Iterator[ExecutingAzureMLV2Service]:
    """The v2 stand-in whose command jobs (and sweep trials) really run, as subprocesses."""
    yield from executing_v2_service(azurite)


@pytest.fixture
def executing_aml_v2(
    executing_aml_v2_service: ExecutingAzureMLV2Service, azurite: Azurite
) -> AzureMLV2Backend:
    """The AzureML v2 backend on the executing stand-in; its watches look every half second."""
    backend = AzureMLV2Backend(
        service=executing_aml_v2_service, account_urls={ACCOUNT_NAME: azurite.account_url}
    )
    backend.max_poll_seconds = 0.5  # type: ignore[misc]  # the stand-in answers at once
    return backend
