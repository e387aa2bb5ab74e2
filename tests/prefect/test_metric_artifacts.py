"""A watched run's curves and progress as artifacts in a real Prefect API, as epochs arrive."""

from __future__ import annotations

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


def test_run_job_publishes_curves_that_grow_and_progress_that_reaches_100(
    workspace: tuple[str, LocalBackend], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    block, _ = workspace
    monkeypatch.setattr(metric_artifacts, "HISTORY_ARTIFACT_SECONDS", 0.3)
    write_script(tmp_path / "project", "train.py", TRAIN)
    spec = JobSpec(entry_script="train.py", snapshot_root=tmp_path / "project")

    @flow
    def train() -> str:
        return run_job(block, spec, retry_delay_seconds=0).run.run_id

    run_id = train()
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
