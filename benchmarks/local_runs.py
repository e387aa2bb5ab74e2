"""Overhead of a local run: submit to Completed for `print("hi")`.

Run: `python -m benchmarks.local_runs [--runs N]`. Prints the median and worst time over N
runs submitted one after another to a fresh workspace in a temporary folder, and how long a bare
`python -c 'print("hi")'` takes on this machine for comparison.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from himl_tasks.backends.local.backend import LocalBackend
from himl_tasks.job_spec import JobSpec


def measure(runs: int) -> tuple[list[float], list[float]]:
    """Returns the submit-to-Completed seconds of each run, and of bare interpreter starts."""
    with tempfile.TemporaryDirectory(prefix="himl-local-bench-") as folder:
        root = Path(folder)
        (root / "project").mkdir()
        (root / "project" / "hi.py").write_text('print("hi")\n')
        backend = LocalBackend(root / "workspace")
        spec = JobSpec(entry_script="hi.py", snapshot_root=root / "project")
        overheads = []
        for _ in range(runs):
            started = time.perf_counter()
            state = backend.wait(backend.submit(spec), poll=0.005)
            overheads.append(time.perf_counter() - started)
            if not state.succeeded:
                raise SystemExit(f"run failed: {state.error}")
    bare = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", 'print("hi")'], check=True, capture_output=True)
        bare.append(time.perf_counter() - started)
    return overheads, bare


def main() -> None:
    """Runs the measurement and prints the result."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    overheads, bare = measure(args.runs)
    print(
        f"local run, submit to Completed, print('hi'), {args.runs} runs: median "
        f"{statistics.median(overheads) * 1000:.0f} ms, worst {max(overheads) * 1000:.0f} ms"
    )
    print(f"bare python -c 'print(\"hi\")': median {statistics.median(bare) * 1000:.0f} ms")


if __name__ == "__main__":
    main()
