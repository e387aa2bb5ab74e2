"""The real deployment path, end to end: server, deploy, worker, `prefect deployment run`."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from scripts.demo import PROJECT_ROOT


def test_the_demo_deploys_runs_and_stops_what_it_started(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env["HIML_STATE"] = str(tmp_path / "state")
    finished = subprocess.run(
        [sys.executable, "-m", "scripts.demo"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    output = finished.stdout + finished.stderr
    assert finished.returncode == 0, output[-3000:]
    assert "Flow run finished successfully in 'Completed'" in output
    assert "| digits_raw:1 | digits_features:1 |" in output
    accuracy = float(re.search(r"Test accuracy: \*\*([0-9.]+)\*\*", output).group(1))  # type: ignore[union-attr]
    assert accuracy >= 0.95
    assert (tmp_path / "state/results/outputs/checkpoints/best_model.ckpt").is_file()
    assert (tmp_path / "state/prefect/prefect.db").is_file()  # the server's database
    assert "stopped Prefect worker" in output and "stopped Prefect server" in output
    port = re.search(r"127\.0\.0\.1:(\d+)", output).group(1)  # type: ignore[union-attr]
    probe = subprocess.run(
        [sys.executable, "-c", f"import socket; socket.create_connection(('127.0.0.1', {port}))"],
        capture_output=True,
        check=False,
    )
    assert probe.returncode != 0  # nothing listens there any more
