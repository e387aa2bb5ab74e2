"""The pipeline contract (himl_tasks.testing) against the local backend.

The AzureML backends join it with their stand-ins' harnesses (test_backend_contract.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from himl_tasks.testing.backend_contract import BackendHarness
from himl_tasks.testing.pipeline_contract import PipelineContract
from tests.backends.test_backend_contract import local_harness


class TestLocalPipelines(PipelineContract):
    @pytest.fixture
    def harness(self, tmp_path: Path) -> Iterator[BackendHarness]:
        yield from local_harness(tmp_path)
