"""Many queued local runs: do they all complete, and what do the waiting ones cost?

Run: `python -m benchmarks.queued_runs [--runs 1000] [--slots 4]`. Submits `--runs` small jobs
at once to a cluster of `--slots` slots in a fresh workspace (a temporary folder). Each job
logs three metrics. A thread samples every 50 ms, from /proc, the supervisor processes of the
workspace (`python -m himl_tasks.backends.local.supervisor <workspace> ...`): how many there
are and the sum of their resident memory (VmRSS). It reports the peaks of both, the peak of
job processes for comparison, the most runs Running at once (from the registry's times),
whether every run Completed with all its metrics, and whether "database is locked" appears in
any run's logs. The target: the supervisors' peak total under 300 MB, every run complete, no
"database is locked".
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from himl_tasks.backends.local.backend import LocalBackend
from himl_tasks.job_spec import JobSpec
from himl_tasks.runs import RunRef

SUPERVISOR_MODULE = b"himl_tasks.backends.local.supervisor"
TARGET_MB = 300.0
JOB = """\
import sys
from himl_tasks.runtime import log_metrics
index = int(sys.argv[1])
log_metrics({"index": index, "loss": 1.0 / (index + 1)}, step=0)
log_metrics({"accuracy": 0.5}, step=1)
"""
METRICS_PER_RUN = 3


@dataclass
class Samples:
    """The peaks seen by the sampler."""

    supervisors: int = 0
    supervisor_mb: float = 0.0
    jobs: int = 0
    count: int = 0
    series: list[tuple[float, int, float]] = field(default_factory=list)


def sample(root: Path, script: str, into: Samples, stop: threading.Event) -> None:
    """Records the supervisors (count, total RSS) and jobs of a workspace until `stop`."""
    started = time.monotonic()
    while not stop.is_set():
        supervisors, rss_kb, jobs = 0, 0, 0
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
                status = (entry / "status").read_text()
            except OSError:
                continue
            if SUPERVISOR_MODULE in argv and str(root).encode() in argv:
                supervisors += 1
                rss_kb += next(
                    (int(line.split()[1]) for line in status.splitlines()
                     if line.startswith("VmRSS:")),
                    0,
                )  # fmt: skip
            elif any(arg.endswith(script.encode()) for arg in argv) and _works_in(entry, root):
                jobs += 1
        mb = rss_kb / 1024
        into.count += 1
        into.supervisors = max(into.supervisors, supervisors)
        into.supervisor_mb = max(into.supervisor_mb, mb)
        into.jobs = max(into.jobs, jobs)
        into.series.append((time.monotonic() - started, supervisors, mb))
        stop.wait(0.05)


def _works_in(process: Path, root: Path) -> bool:
    """True if the process's working folder is inside `root` (a job of this workspace's)."""
    try:
        return (process / "cwd").readlink().is_relative_to(root.resolve())
    except OSError:
        return False


def measure(runs: int, slots: int, folder: Path) -> tuple[Samples, dict[str, object]]:
    """Queues `runs` jobs on a `slots`-slot cluster; returns the samples and the outcome."""
    (folder / "project").mkdir()
    (folder / "project" / "job.py").write_text(JOB, encoding="utf-8")
    backend = LocalBackend(folder / "workspace")
    backend.create_compute_cluster("bench", max_concurrent_runs=slots)
    samples, stop = Samples(), threading.Event()
    sampler = threading.Thread(
        target=sample, args=(backend.root, "job.py", samples, stop), daemon=True
    )
    sampler.start()
    started = time.monotonic()
    refs: list[RunRef] = []
    try:
        for index in range(runs):
            spec = JobSpec(entry_script="job.py", args=[str(index)], compute="bench",
                           snapshot_root=folder / "project")  # fmt: skip
            refs.append(backend.submit(spec))
        submitted = time.monotonic() - started
        states = [backend.wait(ref, timeout=3600, poll=0.2) for ref in refs]
        elapsed = time.monotonic() - started
    finally:
        stop.set()
        sampler.join()
    complete = [s for s in states if s.succeeded]
    with_metrics = [ref for ref in refs if len(backend.get_metrics(ref)) == METRICS_PER_RUN]
    locked = sorted(
        str(path.relative_to(backend.root))
        for path in (backend.root / "runs").rglob("*.txt")
        if b"database is locked" in path.read_bytes()
    ) + sorted(
        str(path.relative_to(backend.root))
        for path in (backend.root / "runs").rglob("supervisor.log")
        if b"database is locked" in path.read_bytes()
    )
    spans = [(s.started_at, s.ended_at) for s in states if s.started_at and s.ended_at]
    at_once = max(
        (sum(1 for begin, end in spans if begin <= moment < end) for moment, _ in spans),
        default=0,
    )
    outcome: dict[str, object] = {
        "runs": runs,
        "runs at once": at_once,
        "completed": len(complete),
        "with all metrics": len(with_metrics),
        "database is locked": locked,
        "seconds to submit": submitted,
        "seconds to finish": elapsed,
    }
    return samples, outcome


def main(argv: list[str] | None = None) -> int:
    """Runs the measurement, prints it; exits 1 if a target is missed."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--slots", type=int, default=4)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="himl-queued-bench-") as folder:
        samples, outcome = measure(args.runs, args.slots, Path(folder))
    runs = args.runs
    print(f"{runs} runs queued on a {args.slots}-slot cluster:")
    print(f"  submitted in {outcome['seconds to submit']:.1f} s, all ended after "
          f"{outcome['seconds to finish']:.1f} s")  # fmt: skip
    print(f"  completed: {outcome['completed']} of {runs}; with all {METRICS_PER_RUN} metrics: "
          f"{outcome['with all metrics']} of {runs}")  # fmt: skip
    print(f"  supervisor processes, peak: {samples.supervisors}; their total RSS, peak: "
          f"{samples.supervisor_mb:.1f} MB (target < {TARGET_MB:.0f} MB; "
          f"{samples.count} samples, every 50 ms)")  # fmt: skip
    print(f"  job processes, peak: {samples.jobs} (a sample takes a while: a job ending and the "
          f"next starting can both be seen); runs Running at once, from the registry's start "
          f"and end times: {outcome['runs at once']}")  # fmt: skip
    locked = outcome["database is locked"]
    print(f"  'database is locked' in run logs: {len(locked)} files")  # type: ignore[arg-type]
    ok = (
        outcome["completed"] == runs
        and outcome["with all metrics"] == runs
        and not locked
        and samples.supervisor_mb < TARGET_MB
    )
    print("  targets met" if ok else "  TARGET MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
