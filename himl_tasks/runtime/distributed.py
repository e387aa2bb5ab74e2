"""Helpers for distributed jobs: process ranks, a barrier, and the multi-node variables."""

from __future__ import annotations

import os


def is_global_rank_zero() -> bool:
    """True unless this is a distributed job's process of rank other than 0."""
    return os.environ.get("RANK", "0") == "0"


def is_local_rank_zero() -> bool:
    """True in the first process on each node (and whenever the job is not distributed)."""
    return os.environ.get("LOCAL_RANK", "0") == "0"


def torch_barrier() -> None:
    """Waits for every process of a distributed job; does nothing without torch.distributed."""
    try:
        import torch.distributed as dist
    except ImportError:
        return
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def set_environment_variables_for_multi_node() -> None:
    """Sets MASTER_ADDR, MASTER_PORT and NODE_RANK from AzureML's MPI variables.

    The local backend sets these itself; on AzureML with an MPI configuration they are derived
    from the variables AzureML sets on each node. Variables already set are left alone.
    """
    master = (
        os.environ.get("AZ_BATCHAI_MPI_MASTER_NODE")
        or os.environ.get("AZ_BATCH_MASTER_NODE", "").split(":")[0]
    )
    if master:
        os.environ.setdefault("MASTER_ADDR", master)
    os.environ.setdefault("MASTER_PORT", "6105")
    node_rank = os.environ.get("OMPI_COMM_WORLD_RANK") or os.environ.get("NODE_RANK")
    if node_rank is not None:
        os.environ.setdefault("NODE_RANK", node_rank)
