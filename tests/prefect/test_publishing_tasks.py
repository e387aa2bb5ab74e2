"""The publishing tasks and the run-published-pipeline flow, on a saved local workspace."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from prefect import flow
from prefect.runtime import flow_run

from flows.run_published_pipeline import run_published_pipeline
from himl_tasks.backends.local.backend import LocalBackend
from himl_tasks.errors import JobFailedError, PipelineNotFoundError
from himl_tasks.job_spec import JobSpec
from himl_tasks.pipeline_runs import PipelineSchedule
from himl_tasks.pipelines import PipelineSpec, PipelineStep
from himl_tasks.prefect import (
    publish_pipeline,
    remove_pipeline_schedule,
    schedule_pipeline,
    submit_published_pipeline,
)
from himl_tasks.prefect.artifacts import artifact_key
from himl_tasks.prefect.publishing_tasks import SUBMISSION_PREFIX
from himl_tasks.runs import RunStatus
from himl_tasks.testing.publishing_contract import unique
from tests.prefect.test_artifacts import artifacts_of


def chain(project: Path, name: str, script: str = "epochs.py") -> PipelineSpec:
    """One step: the project's `epochs.py` for one quick epoch (or another script)."""
    job = JobSpec(entry_script=script, args=["1", "0"], snapshot_root=project)
    return PipelineSpec(name, [PipelineStep("train", job)])


def test_a_flow_publishes_schedules_submits_and_unschedules(
    prefect_api_url: str, workspace: tuple[str, LocalBackend], project: Path
) -> None:
    block, backend = workspace
    pipeline = chain(project, unique("chain"))
    name = unique("nightly")
    seen: dict[str, Any] = {}

    @flow
    def publish_then_schedule() -> None:
        seen["flow_run"] = str(flow_run.id)
        seen["published"] = publish_pipeline(block, pipeline, "the first")
        seen["scheduled"] = schedule_pipeline(
            block, PipelineSchedule(name, pipeline.name, "0 2 1 1 *")
        )
        seen["listed"] = backend.pipeline_schedules()
        seen["run"] = submit_published_pipeline(block, pipeline.name)
        remove_pipeline_schedule(block, name)

    publish_then_schedule()

    published = seen["published"]
    assert backend.published_pipelines(pipeline.name) == [published]
    assert published.description == "the first"
    assert seen["listed"] == [seen["scheduled"]] and seen["scheduled"].id
    assert backend.pipeline_schedules() == []
    run = seen["run"]
    submission = f"{SUBMISSION_PREFIX}{pipeline.name}-latest-{seen['flow_run']}"
    assert backend.find_submission(submission) == run
    assert backend.wait(run, timeout=120).status is RunStatus.COMPLETED
    markdown = dict(artifacts_of(seen["flow_run"])["markdown"])
    assert published.endpoint in str(markdown[artifact_key("published", f"{pipeline.name}-1")])
    assert run.run_id in str(markdown[artifact_key("pipeline", run.run_id)])


def test_the_flow_runs_a_published_pipeline_to_its_end(
    prefect_api_url: str, workspace: tuple[str, LocalBackend], project: Path
) -> None:
    block, backend = workspace
    good, bad = chain(project, unique("good")), chain(project, unique("bad"), "broken.py")
    backend.publish_pipeline(good)
    backend.publish_pipeline(bad)

    recovery_id = run_published_pipeline(block, good.name)

    ref = backend.get_run_ref(recovery_id)
    assert backend.get_state(ref).status is RunStatus.COMPLETED
    assert [backend.get_state(c).status for c in backend.child_runs(ref)] == [RunStatus.COMPLETED]
    with pytest.raises(JobFailedError):
        run_published_pipeline(block, bad.name)
    with pytest.raises(PipelineNotFoundError, match="no pipeline 'never'"):
        run_published_pipeline(block, "never")
