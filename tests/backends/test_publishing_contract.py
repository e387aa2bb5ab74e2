"""The publishing contract (himl_tasks.testing) on the local backend and AzureML v1 and v2.

On the local backend a published pipeline is a Prefect deployment and a schedule that
deployment's schedule: the contract runs against a real Prefect API (the session's test
server), which the backend reaches through its REST interface as it does everywhere (it never
imports Prefect). What only the local backend does is in test_local_publishing.py. The AzureML
backends run it through their stand-ins' harnesses (test_backend_contract.py), which keep
published pipelines, endpoints or components, and schedules as their services do.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from himl_tasks.backends.azureml_v1 import AzureMLV1Backend
from himl_tasks.backends.azureml_v2 import AzureMLV2Backend
from himl_tasks.testing.backend_contract import BackendHarness
from himl_tasks.testing.publishing_contract import PublishingContract
from tests.backends import azureml_v2_service as v2
from tests.backends.azureml_service import FakeAzureMLService
from tests.backends.test_backend_contract import azureml_v2_harness, local_harness, v1_harness


class TestLocalPublishing(PublishingContract):
    @pytest.fixture
    def harness(self, prefect_api_url: str, tmp_path: Path) -> Iterator[BackendHarness]:
        yield from local_harness(tmp_path)


class TestAzureMLV1Publishing(PublishingContract):
    @pytest.fixture
    def harness(
        self, aml: AzureMLV1Backend, aml_service: FakeAzureMLService, tmp_path: Path
    ) -> BackendHarness:
        return v1_harness(aml, aml_service, tmp_path)


class TestAzureMLV2Publishing(PublishingContract):
    @pytest.fixture
    def harness(
        self, aml_v2: AzureMLV2Backend, aml_v2_service: v2.FakeAzureMLV2Service, tmp_path: Path
    ) -> BackendHarness:
        return azureml_v2_harness(aml_v2, aml_v2_service, tmp_path)
