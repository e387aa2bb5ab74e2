"""Rank helpers and the multi-node variables."""

from __future__ import annotations

import os

import pytest

from himl_tasks.runtime import (
    is_global_rank_zero,
    is_local_rank_zero,
    set_environment_variables_for_multi_node,
)

VARIABLES = (
    *("RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "MASTER_IP"),
    *("AZ_BATCH_MASTER_NODE", "AZ_BATCHAI_MPI_MASTER_NODE", "OMPI_COMM_WORLD_RANK"),
)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)


def test_ranks(monkeypatch: pytest.MonkeyPatch) -> None:
    assert is_local_rank_zero() and is_global_rank_zero()
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setenv("RANK", "5")
    assert not is_local_rank_zero() and not is_global_rank_zero()


def multi_node(**variables: str) -> dict[str, str | None]:
    os.environ.update(variables)
    set_environment_variables_for_multi_node()
    return {name: os.environ.get(name) for name in ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK")}


# hi-ml's rules (health_azure/utils.py, set_environment_variables_for_multi_node), in its order.
@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        ({"AZ_BATCH_MASTER_NODE": "10.0.0.4:6000", "OMPI_COMM_WORLD_RANK": "2",
          "AZ_BATCHAI_MPI_MASTER_NODE": "10.0.0.9"}, ("10.0.0.4", "6000", "2")),
        ({"AZ_BATCH_MASTER_NODE": "10.0.0.4"}, ("10.0.0.4", "6105", None)),
        ({"AZ_BATCHAI_MPI_MASTER_NODE": "10.0.0.9", "MASTER_IP": "10.0.0.7"},
         ("10.0.0.9", "6105", None)),
        ({"AZ_BATCHAI_MPI_MASTER_NODE": "localhost", "MASTER_IP": "10.0.0.7",
          "MASTER_PORT": "7000", "OMPI_COMM_WORLD_RANK": "1"}, ("10.0.0.7", "7000", "1")),
        ({"AZ_BATCHAI_MPI_MASTER_NODE": "localhost", "OMPI_COMM_WORLD_RANK": "1"},
         (None, None, None)),  # a single node: nothing set
    ],
)  # fmt: skip
def test_multi_node_variables_as_hi_ml_sets_them(
    variables: dict[str, str], expected: tuple[str | None, ...]
) -> None:
    assert tuple(multi_node(**variables).values()) == expected


def test_a_master_node_with_two_colons_is_refused() -> None:
    with pytest.raises(ValueError, match="AZ_BATCH_MASTER_NODE"):
        multi_node(AZ_BATCH_MASTER_NODE="a:1:2")
