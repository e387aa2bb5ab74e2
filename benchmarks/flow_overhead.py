"""Orchestration overhead of preprocess-then-train on the local backend.

Run: `python -m benchmarks.flow_overhead [--repeats N]`. Each repetition runs the whole flow
(with a 1-epoch training job) on a fresh local workspace against a real Prefect API (a temporary
server, started once and not timed). The overhead is the flow's wall time minus the time the
job processes ran (from each run's Running status to its next status), for the whole flow and
for each job (its `run_job` task's duration minus its process time). Targets: under 5 s for
the flow, under 1 s per job.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any


def process_seconds(backend: Any, recovery_id: str) -> float:
    """How long a run's job processes ran: each Running status until the next status."""
    history = backend.status_history(backend.get_run_ref(recovery_id))
    return sum(
        later[2].timestamp() - event[2].timestamp()
        for event, later in itertools.pairwise(history)
        if event[1] == "Running"
    )


def task_seconds(flow_run_id: Any) -> dict[str, float]:
    """Duration of each `run_job` task run of a flow run, by task run name."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
        )
    return {
        run.name: (run.end_time - run.start_time).total_seconds()
        for run in runs
        if run.name.startswith("run_job") and run.start_time and run.end_time
    }


def measure_once(folder: Path) -> dict[str, Any]:
    """Runs the flow once on a fresh workspace; returns its timings."""
    from flows.preprocess_then_train import preprocess_then_train
    from himl_tasks.backends.local.backend import LocalBackend
    from himl_tasks.prefect.blocks import LocalWorkspace

    name = f"bench-{uuid.uuid4().hex[:8]}"
    LocalWorkspace(root=str(folder / name)).save(name)
    backend = LocalBackend(folder / name)
    started = time.perf_counter()
    state = preprocess_then_train(
        workspace_block=f"local-workspace/{name}",
        epochs=1,
        results_folder=str(folder / f"{name}-results"),
        return_state=True,
    )
    wall = time.perf_counter() - started
    result = state.result()
    jobs = {
        "preprocess": process_seconds(backend, result["preprocess_run"]),
        "train": process_seconds(backend, result["train_run"]),
    }
    tasks = sorted(task_seconds(state.state_details.flow_run_id).values())
    task_by_job = dict(zip(("preprocess", "train"), tasks, strict=False))
    return {
        "wall": wall,
        "flow_overhead": wall - sum(jobs.values()),
        "job_overhead": {
            job: task_by_job.get(job, float("nan")) - seconds for job, seconds in jobs.items()
        },
        "process": jobs,
    }


def main() -> None:
    """Runs the measurement and prints the result."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    from prefect.testing.utilities import prefect_test_harness

    with (
        prefect_test_harness(server_startup_timeout=60),
        tempfile.TemporaryDirectory(prefix="himl-flow-bench-") as folder,
    ):
        results = [measure_once(Path(folder)) for _ in range(args.repeats)]
    for index, r in enumerate(results, 1):
        print(
            f"run {index}: flow wall {r['wall']:.2f} s, job processes "
            + ", ".join(f"{k} {v:.2f} s" for k, v in r["process"].items())
            + f"; overhead flow {r['flow_overhead']:.2f} s, per job "
            + ", ".join(f"{k} {v:.2f} s" for k, v in r["job_overhead"].items())
        )
    flow = statistics.median(r["flow_overhead"] for r in results)
    worst_job = max(v for r in results for v in r["job_overhead"].values())
    print(f"median flow overhead {flow:.2f} s (target < 5 s): {'met' if flow < 5 else 'MISSED'}")
    print(
        f"worst per-job overhead {worst_job:.2f} s (target < 1 s): "
        f"{'met' if worst_job < 1 else 'MISSED'}"
    )


if __name__ == "__main__":
    main()
