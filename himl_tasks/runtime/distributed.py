"""Helpers for distributed jobs: process ranks, a barrier, and the multi-node variables."""

from __future__ import annotations

import logging
import os

from himl_tasks.errors import InvalidInputError

logger = logging.getLogger(__name__)

DEFAULT_MASTER_PORT = 6105


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
    """Sets MASTER_ADDR, MASTER_PORT and NODE_RANK for PyTorch from AzureML's variables.

    As hi-ml does (health_azure/utils.py): the master node comes from `AZ_BATCH_MASTER_NODE`
    (`address[:port]`, the port becoming MASTER_PORT), else `AZ_BATCHAI_MPI_MASTER_NODE`
    (unless it is "localhost"), else `MASTER_IP` (AKS); with none of them this is a
    single-node job and nothing is set. MASTER_PORT defaults to 6105; NODE_RANK is the MPI
    rank `OMPI_COMM_WORLD_RANK` when set. The local backend sets these itself and none of
    AzureML's variables, so this does nothing in its jobs.

    Raises:
        InvalidInputError: If `AZ_BATCH_MASTER_NODE` has more than one colon.
    """
    batch_master = os.environ.get("AZ_BATCH_MASTER_NODE")
    mpi_master = os.environ.get("AZ_BATCHAI_MPI_MASTER_NODE")
    if batch_master is not None:
        address, *port = batch_master.split(":")
        if len(port) > 1:
            raise InvalidInputError(
                f"AZ_BATCH_MASTER_NODE={batch_master!r} is not 'address' or 'address:port'"
            )
        if port:
            os.environ["MASTER_PORT"] = port[0]
        os.environ["MASTER_ADDR"] = address
    elif mpi_master is not None and mpi_master != "localhost":
        os.environ["MASTER_ADDR"] = mpi_master
    elif "MASTER_IP" in os.environ:
        os.environ["MASTER_ADDR"] = os.environ["MASTER_IP"]
    else:
        logger.info("no MPI master node in the environment: a single-node job")
        return
    os.environ.setdefault("MASTER_PORT", str(DEFAULT_MASTER_PORT))
    if "OMPI_COMM_WORLD_RANK" in os.environ:
        os.environ["NODE_RANK"] = os.environ["OMPI_COMM_WORLD_RANK"]
    logger.info(
        "distributed training: MASTER_ADDR=%s, MASTER_PORT=%s, NODE_RANK=%s",
        os.environ["MASTER_ADDR"],
        os.environ["MASTER_PORT"],
        os.environ.get("NODE_RANK", ""),
    )
