"""Pytest fixtures the contract suites and a project's own tests share.

Register them in a `conftest.py` with `pytest_plugins = ["himl_tasks.testing.fixtures"]`.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from himl_tasks.testing.azurite import Azurite, start_azurite, stop_azurite


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    """One Azurite for the whole session, on a free loopback port, stopped with SIGTERM."""
    try:
        endpoint, process = start_azurite(tmp_path_factory.mktemp("azurite"))
    except RuntimeError as error:
        pytest.fail(str(error), pytrace=False)
    try:
        yield endpoint
    finally:
        stop_azurite(process)
