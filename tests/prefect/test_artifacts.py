"""The artifacts the tasks leave in a real Prefect API: run links, metrics, progress."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from uuid import UUID

from prefect import flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId
from prefect.runtime import flow_run

from himl_tasks.backends.local.backend import LocalBackend
from himl_tasks.prefect import run_job, upload_folder_to_datastore
from himl_tasks.prefect.artifacts import artifact_key
from tests.conftest import write_tree
from tests.prefect.conftest import epochs_spec


def artifacts_of(flow_run_id: str) -> dict[str, list[tuple[str | None, Any]]]:
    """The flow run's artifacts by type: {type: [(key, data), ...]}."""
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[UUID(flow_run_id)])
            )
        )
    by_type: dict[str, list[tuple[str | None, Any]]] = {}
    for artifact in found:
        by_type.setdefault(str(artifact.type), []).append((artifact.key, artifact.data))
    return by_type


def test_artifact_keys_are_what_prefect_accepts() -> None:
    assert artifact_key("metrics", "Train_Digits.17:AB") == "metrics-train-digits-17-ab"
    assert len(artifact_key("run", "x" * 300)) == 100


def test_run_job_leaves_a_link_to_its_run_and_a_table_of_its_metrics(
    workspace: tuple[str, LocalBackend], project: Path
) -> None:
    block, _ = workspace
    seen: dict[str, str] = {}

    @flow
    def train() -> str:
        seen["flow_run"] = str(flow_run.id)
        return run_job(block, epochs_spec(project, 3, 0), retry_delay_seconds=0).run.run_id

    run_id = train()
    artifacts = artifacts_of(seen["flow_run"])
    # Prefect keeps a link as markdown; the curves (test_metric_artifacts) are markdown too.
    markdown, tables = dict(artifacts["markdown"]), dict(artifacts["table"])
    link = markdown[artifact_key("run", run_id)]
    assert f"{run_id}](file://" in str(link)
    table = tables[artifact_key("metrics", run_id)]
    assert '"metric": "epoch_done"' in str(table) and '"value": 2' in str(table)


def test_an_upload_shows_its_progress_reaching_100_percent(
    workspace: tuple[str, LocalBackend], tmp_path: Path
) -> None:
    block, _ = workspace
    write_tree(tmp_path / "raw", {f"{i}.bin": bytes(1000) for i in range(20)})
    seen: dict[str, str] = {}

    @flow
    def upload() -> int:
        seen["flow_run"] = str(flow_run.id)
        return upload_folder_to_datastore(block, "", tmp_path / "raw", "blobs").files

    assert upload() == 20
    [(_, percent)] = artifacts_of(seen["flow_run"])["progress"]
    assert percent == 100.0
