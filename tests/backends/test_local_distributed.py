"""num_nodes > 1: real torch.distributed processes with the gloo backend."""

from __future__ import annotations

from pathlib import Path

from himl_tasks.backends.local.backend import LocalBackend
from himl_tasks.job_spec import JobSpec
from tests.backends.conftest import write_script


def test_two_nodes_initialise_gloo_and_all_reduce(backend: LocalBackend, project: Path) -> None:
    write_script(
        project,
        "allreduce.py",
        """
        import os
        import torch
        import torch.distributed as dist
        from himl_tasks.runtime import get_run_info, is_local_rank_zero, torch_barrier

        dist.init_process_group("gloo")
        rank = dist.get_rank()
        value = torch.tensor([float(rank + 1)])
        dist.all_reduce(value)
        torch_barrier()
        if rank == 0:
            (get_run_info().output_folder / "sum.txt").write_text(
                f"{value.item()} world={dist.get_world_size()} "
                f"nodes={os.environ['NODE_RANK']} local={is_local_rank_zero()}"
            )
        dist.destroy_process_group()
        """,
    )
    ref = backend.submit(JobSpec(entry_script="allreduce.py", snapshot_root=project, num_nodes=2))

    state = backend.wait(ref, timeout=120)

    assert state.succeeded, state.error
    run_dir = backend.registry.get_run(ref.run_id).run_dir  # type: ignore[union-attr]
    assert (run_dir / "snapshot/outputs/sum.txt").read_text() == "3.0 world=2 nodes=0 local=True"
    assert backend.list_files(ref, "azureml-logs") == [
        "azureml-logs/70_driver_log.txt",
        "azureml-logs/70_driver_log_1.txt",
    ]
