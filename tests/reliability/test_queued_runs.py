"""Queued local runs hold no process: a run's supervisor starts when its cluster slot frees.

The numbers for a thousand runs are measured by benchmarks/queued_runs.py; this checks the
shape on a small queue, with real processes counted in /proc.
"""

from __future__ import annotations

import threading
from pathlib import Path

from benchmarks.queued_runs import Samples, sample
from himl_tasks.backends.local.backend import LocalBackend
from himl_tasks.job_spec import JobSpec
from tests.backends.conftest import write_script

JOB = """\
import sys, time
from himl_tasks.runtime import log_metrics
time.sleep(0.05)
log_metrics({"index": int(sys.argv[1])}, step=0)
"""
# A finishing supervisor starts the next run's before it exits: for a moment both live.
HANDOVER = 2


def test_thirty_runs_on_two_slots_never_hold_more_than_two_supervisors_and_all_complete(
    tmp_path: Path,
) -> None:
    project = tmp_path / "project"
    write_script(project, "job.py", JOB)
    backend = LocalBackend(tmp_path / "workspace")
    backend.create_compute_cluster("pair", max_concurrent_runs=2)
    samples, stop = Samples(), threading.Event()
    sampler = threading.Thread(target=sample, args=(backend.root, "job.py", samples, stop))
    sampler.start()
    try:
        specs = [
            JobSpec(entry_script="job.py", args=[str(i)], compute="pair", snapshot_root=project)
            for i in range(30)
        ]
        refs = [backend.submit(spec) for spec in specs]
        states = [backend.wait(ref, timeout=120, poll=0.1) for ref in refs]
    finally:
        stop.set()
        sampler.join()

    assert all(state.succeeded for state in states), [s.error for s in states if s.error]
    assert [[m.value for m in backend.get_metrics(ref)] for ref in refs] == [
        [float(i)] for i in range(30)
    ]
    assert samples.count > 10
    assert 1 <= samples.supervisors <= 2 + HANDOVER, samples.series
    assert 1 <= samples.jobs <= 2  # counted only in this workspace: other tests run jobs too
    starts = sorted((s.started_at, s.ended_at) for s in states)  # type: ignore[type-var]
    overlapping = max(
        sum(1 for start, end in starts if start <= moment < end)  # type: ignore[operator]
        for moment, _ in starts
    )
    assert overlapping <= 2  # never more runs at once than slots
