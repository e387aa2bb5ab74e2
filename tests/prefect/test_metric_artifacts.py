"""A watched run's curves and progress as artifacts in a real Prefect API, as epochs arrive."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

from himl_tasks.backends.local.backend import LocalBackend
from himl_tasks.job_spec import JobSpec
from himl_tasks.prefect import metric_artifacts, run_job
from himl_tasks.prefect.artifacts import artifact_key
from tests.backends.conftest import write_script

# Four epochs, one second apart: a falling loss, a rising accuracy and the progress convention.
TRAIN = """\
    import time
    from himl_tasks.runtime import log_metrics, report_progress

    for epoch in range(4):
        time.sleep(1.0)
        log_metrics({"loss": 1.0 / (epoch + 1), "accuracy": 0.2 * epoch}, step=epoch)
        report_progress(epoch + 1, 4)
        print(f"epoch {epoch} done", flush=True)
"""


def versions(key: str) -> list[tuple[object, str]]:
    """Every version of the artifact `key`, oldest first: (data, created)."""
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key]))
        )
    return [(a.data, str(a.created)) for a in sorted(found, key=lambda a: a.created or 0)]


def run_in_a_flow(block: str, project: Path, script: str) -> str:
    """Runs `script` as a job with `run_job` inside a flow; returns the run's id."""
    write_script(project, "train.py", script)
    spec = JobSpec(entry_script="train.py", snapshot_root=project)

    @flow
    def train() -> str:
        return run_job(block, spec, retry_delay_seconds=0).run.run_id

    return train()


def test_run_job_publishes_curves_that_grow_and_progress_that_reaches_100(
    workspace: tuple[str, LocalBackend], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    block, _ = workspace
    monkeypatch.setattr(metric_artifacts, "HISTORY_ARTIFACT_SECONDS", 0.3)
    run_id = run_in_a_flow(block, tmp_path / "project", TRAIN)
    curves = [str(data) for data, _ in versions(artifact_key("curves", run_id))]
    # A version per epoch seen while the run was going: the sparkline grows a bar at a time.
    lines = [re.search(r"^loss\s+(\S+)", text, re.MULTILINE) for text in curves]
    lengths = [len(match.group(1)) for match in lines if match]
    assert len(lengths) >= 3 and lengths == sorted(lengths) and lengths[-1] == 4
    final = curves[-1]
    assert "loss      █▃▂▁  min 0.25  max 1  last 0.25  (4 points)" in final
    assert "accuracy  ▁▃▆█  min 0  max 0.6  last 0.6  (4 points)" in final
    assert "| 3 | 0.25 | 0.6 |" in final
    assert "epochs_done" not in final  # progress is bookkeeping, not a curve
    [*_, (table, _)] = versions(artifact_key("history", run_id))
    assert '"step": 3' in str(table) and '"loss": "0.25"' in str(table)
    [(percent, _)] = versions(artifact_key("progress", run_id))
    assert percent == 100.0


# A metric per batch: thousands of steps, a non-finite value and a name written to break out.
LONG = """\
    import math
    from himl_tasks.runtime import log_metric

    for step in range(3000):
        log_metric("loss", 1.0 / (step + 1), step=step)
    log_metric("loss", math.nan, step=3000)
    log_metric("bad|name\\n```\\n# injected <script>", math.inf, step=3000)
"""


def test_a_long_history_is_a_bounded_table_and_hostile_names_stay_text(
    workspace: tuple[str, LocalBackend], tmp_path: Path
) -> None:
    # The per-step table had a row per step: a metric logged per batch made every version of
    # the markdown and table artifacts grow without bound (megabytes every 5 s to the API).
    block, _ = workspace
    run_id = run_in_a_flow(block, tmp_path / "project", LONG)
    [*_, (final, _)] = versions(artifact_key("curves", run_id))
    text = str(final)
    rows = [line for line in text.splitlines() if re.match(r"^\| \d", line)]
    assert len(rows) <= metric_artifacts.HISTORY_TABLE_ROWS
    assert rows[0].startswith("| 0 | 1 |") and rows[-1].startswith("| 3000 | nan | inf |")
    assert "of 3001 steps shown" in text
    assert len(text) < 40_000
    # The name stays inside the code block and escaped in the table: no heading, no raw tag.
    before, code, after = text.split("```")
    assert "# injected" in code and "<script>" not in before + after
    assert "\n# injected" not in after and "bad\\|name" in after
    [*_, (table, _)] = versions(artifact_key("history", run_id))
    table_rows = json.loads(str(table))
    assert len(table_rows) <= metric_artifacts.HISTORY_TABLE_ROWS
    assert table_rows[-1] == {
        "step": 3000,
        "loss": "nan",
        "bad|name\n```\n# injected <script>": "inf",
    }
