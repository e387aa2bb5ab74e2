"""What the hi-ml door costs a script: a plain run, and a run submitted with `--himl-local`.

Run: `python -m benchmarks.himl_door [--runs N]`. A tiny hi-ml script (it calls
`submit_to_azure_if_needed` and prints a line) is started as its own process, as a user starts
it, N times each way:
- plain (`python script.py`): the call's import and work, against a bare `python -c pass`;
- `--himl-local`: the whole command, from start to the process's exit, which submits the
  script to a fresh local workspace, waits for the run and streams its output.
Prints the median and worst of each.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SCRIPT = """\
from himl_tasks import submit_to_azure_if_needed

run_info = submit_to_azure_if_needed(
    wait_for_completion=True, wait_for_completion_show_output=True
)
print("in a run" if run_info.run is not None else "plain", flush=True)
"""


def _seconds(command: list[str], folder: Path, environment: dict[str, str]) -> float:
    started = time.perf_counter()
    finished = subprocess.run(
        command, cwd=folder, env=environment, capture_output=True, text=True, timeout=120
    )
    seconds = time.perf_counter() - started
    if finished.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{finished.stderr}")
    return seconds


def measure(runs: int) -> dict[str, list[float]]:
    """Returns the seconds of each way of starting the script, `runs` times each."""
    with tempfile.TemporaryDirectory(prefix="himl-door-bench-") as scratch:
        folder = Path(scratch) / "project"
        folder.mkdir()
        (folder / "script.py").write_text(SCRIPT, encoding="utf-8")
        environment = {**os.environ, "HIML_HOME": str(Path(scratch) / "workspace")}
        ways = {
            "bare python -c pass": [sys.executable, "-c", "pass"],
            "plain python script.py": [sys.executable, "script.py"],
            "python script.py --himl-local": [sys.executable, "script.py", "--himl-local"],
        }
        times: dict[str, list[float]] = {way: [] for way in ways}
        for _ in range(runs):
            for way, command in ways.items():
                times[way].append(_seconds(command, folder, environment))
    return times


def main() -> None:
    """Runs the measurement and prints the result."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    for way, seconds in measure(args.runs).items():
        print(
            f"{way}, {args.runs} runs: median {statistics.median(seconds) * 1000:.0f} ms, "
            f"worst {max(seconds) * 1000:.0f} ms"
        )


if __name__ == "__main__":
    main()
