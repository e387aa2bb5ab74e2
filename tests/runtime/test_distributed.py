"""Rank helpers and the multi-node variables."""

from __future__ import annotations

import os

import pytest

from himl_tasks.runtime import (
    is_global_rank_zero,
    is_local_rank_zero,
    set_environment_variables_for_multi_node,
)


def test_ranks_and_multi_node_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "NODE_RANK"):
        monkeypatch.delenv(name, raising=False)
    assert is_local_rank_zero() and is_global_rank_zero()
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setenv("RANK", "5")
    assert not is_local_rank_zero() and not is_global_rank_zero()

    monkeypatch.setenv("AZ_BATCH_MASTER_NODE", "10.0.0.4:6000")
    monkeypatch.setenv("OMPI_COMM_WORLD_RANK", "2")
    set_environment_variables_for_multi_node()

    assert (os.environ["MASTER_ADDR"], os.environ["NODE_RANK"]) == ("10.0.0.4", "2")
    assert os.environ["MASTER_PORT"] == "6105"
