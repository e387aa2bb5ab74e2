"""The publishing contract (himl_tasks.testing) on the local backend, and what is local only.

On the local backend a published pipeline is a Prefect deployment and a schedule that
deployment's schedule: these tests talk to a real Prefect API (the session's test server),
the backend through its REST interface as it does everywhere (it never imports Prefect).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from himl_tasks.backends.local.backend import LocalBackend
from himl_tasks.testing.backend_contract import BackendHarness
from himl_tasks.testing.publishing_contract import PublishingContract
from tests.backends.test_backend_contract import LocalHarness


@pytest.fixture
def local_harness(prefect_api_url: str, tmp_path: Path) -> Iterator[LocalHarness]:
    project = tmp_path / "project"
    project.mkdir()
    backend = LocalBackend(tmp_path / "workspace")
    yield LocalHarness(backend, project)
    # A test that failed half-way leaves no job running after it.
    for run in backend.registry.runs():
        if not run.status.is_terminal:
            backend.cancel(backend.get_run_ref(run.run_id))


class TestLocalPublishing(PublishingContract):
    @pytest.fixture
    def harness(self, local_harness: LocalHarness) -> BackendHarness:
        return local_harness
