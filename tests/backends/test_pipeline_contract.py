"""The pipeline contract (himl_tasks.testing) against the local backend and AzureML v1 and v2.

The AzureML backends join it with their stand-ins' harnesses (test_backend_contract.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from himl_tasks.backends.azureml_v1 import AzureMLV1Backend
from himl_tasks.backends.azureml_v2 import AzureMLV2Backend
from himl_tasks.testing.backend_contract import BackendHarness
from himl_tasks.testing.pipeline_contract import PipelineContract
from tests.backends import azureml_v2_service as v2
from tests.backends.azureml_service import FakeAzureMLService
from tests.backends.test_backend_contract import azureml_v2_harness, local_harness, v1_harness


class TestLocalPipelines(PipelineContract):
    @pytest.fixture
    def harness(self, tmp_path: Path) -> Iterator[BackendHarness]:
        yield from local_harness(tmp_path)


class TestAzureMLV1Pipelines(PipelineContract):
    @pytest.fixture
    def harness(
        self, aml: AzureMLV1Backend, aml_service: FakeAzureMLService, tmp_path: Path
    ) -> BackendHarness:
        return v1_harness(aml, aml_service, tmp_path)


class TestAzureMLV2Pipelines(PipelineContract):
    """Through the v2 stand-in, which behaves like the pipeline service
    (tests/backends/azureml_v2_pipeline_nodes.py)."""

    @pytest.fixture
    def harness(
        self, aml_v2: AzureMLV2Backend, aml_v2_service: v2.FakeAzureMLV2Service, tmp_path: Path
    ) -> BackendHarness:
        return azureml_v2_harness(aml_v2, aml_v2_service, tmp_path)
