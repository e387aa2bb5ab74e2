"""The run_pipeline task against a real Prefect API and real local pipelines."""

from __future__ import annotations

import dataclasses
import datetime
import logging
from pathlib import Path

import pytest
from prefect import flow
from prefect.runtime import flow_run

from himl_tasks.backends.local.backend import LocalBackend
from himl_tasks.errors import JobFailedError
from himl_tasks.jobs.pipeline_to_completion import PipelineResult
from himl_tasks.pipelines import PipelineSpec
from himl_tasks.prefect import backend_for, run_pipeline
from himl_tasks.prefect.artifacts import artifact_key
from himl_tasks.runs import RunRef, RunState, RunStatus
from himl_tasks.testing.backend_contract import Job
from himl_tasks.testing.pipeline_contract import PREP, TRAIN, chain, make_raw
from tests.backends.test_backend_contract import LocalHarness
from tests.prefect.conftest import canceling_the_flow_run
from tests.prefect.test_artifacts import artifacts_of


def harness_on(backend: LocalBackend, tmp_path: Path) -> LocalHarness:
    (tmp_path / "jobs").mkdir()
    return LocalHarness(backend, tmp_path / "jobs")


def test_run_pipeline_forwards_step_logs_and_leaves_links_metrics_and_lineage(
    workspace: tuple[str, LocalBackend], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    block, backend = workspace
    harness = harness_on(backend, tmp_path)
    make_raw(harness)
    train = Job(log_lines=("training",), input_datasets=("features",), metrics={"loss": (1.0, 0.5)})
    pipeline = chain(harness, train=train)
    seen: dict[str, str] = {}

    @flow
    def run() -> PipelineResult:
        seen["flow_run"] = str(flow_run.id)
        return run_pipeline(block, pipeline, retry_delay_seconds=0)

    with caplog.at_level(logging.INFO):
        result = run()

    assert result.state.succeeded and result.attempts == [result.run.recovery_id]
    assert not result.reused
    prep, trained = result.steps["prep"], result.steps["train"]
    assert prep.run is not None and trained.run is not None
    assert prep.outputs == trained.inputs == {"features": 1}
    assert prep.inputs == {"raw": 1}
    assert trained.metrics == {"loss": 0.5}
    assert [m.value for m in trained.metric_history] == [1.0, 0.5]
    # Each step's log lines, prefixed with the step's name.
    messages = [record.getMessage() for record in caplog.records]
    assert "[prep] preparing" in messages and "[train] training" in messages
    artifacts = artifacts_of(seen["flow_run"])
    markdown, tables = dict(artifacts["markdown"]), dict(artifacts["table"])
    assert result.run.run_id in str(markdown[artifact_key("pipeline", result.run.run_id)])
    for step in (prep, trained):
        assert step.run is not None
        assert f"{step.run.run_id}](file://" in str(markdown[artifact_key("step", step.run.run_id)])
    table = tables[artifact_key("metrics", trained.run.run_id)]
    assert '"metric": "loss"' in str(table) and '"value": 0.5' in str(table)
    lineage = str(markdown[artifact_key("lineage", result.run.run_id)])
    assert f"| prep | [{prep.run.recovery_id}]" in lineage
    assert "| raw:1 | features:1 |" in lineage and "| features:1 | - |" in lineage

    # Run again, unchanged: the pipeline run is found, not submitted again.
    runs = len(backend.list_runs())
    again = run()
    assert again.run == result.run and again.reused
    assert len(backend.list_runs()) == runs


def test_a_new_pipeline_run_is_not_reused_when_the_service_s_clock_is_behind(
    workspace: tuple[str, LocalBackend], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It was said reused when its created time (the service's clock) was before the task
    started (this machine's): an AzureML run's created time is the service's."""
    block, backend = workspace
    harness = harness_on(backend, tmp_path)
    make_raw(harness)
    pipeline = chain(harness)
    serving = backend_for(block)
    get_state = serving.get_state

    def an_hour_behind(ref: RunRef) -> RunState:
        state = get_state(ref)
        created = state.created_at
        if created is None:
            return state
        return dataclasses.replace(state, created_at=created - datetime.timedelta(hours=1))

    monkeypatch.setattr(serving, "get_state", an_hour_behind)

    @flow
    def run() -> PipelineResult:
        return run_pipeline(block, pipeline, retry_delay_seconds=0)

    result = run()

    assert result.state.succeeded and not result.reused


def test_a_step_s_user_error_fails_the_task_with_the_step_s_state(
    workspace: tuple[str, LocalBackend], tmp_path: Path
) -> None:
    block, backend = workspace
    harness = harness_on(backend, tmp_path)
    make_raw(harness)
    pipeline = chain(harness, train=Job(input_datasets=TRAIN.input_datasets, exit_code=3))

    @flow
    def run() -> PipelineResult:
        return run_pipeline(block, pipeline, retry_delay_seconds=0)

    with pytest.raises(JobFailedError, match=r"ended Failed \(user_error\)") as failed:
        run()

    (pipeline_run,) = [r for r in backend.list_runs() if r.tags.get("pipeline")]
    train = {s.step: s.run for s in backend.pipeline_steps(pipeline_run.ref)}["train"]
    assert getattr(failed.value.state, "ref", None) == train


def test_canceling_the_flow_run_cancels_the_pipeline_and_its_running_step(
    workspace: tuple[str, LocalBackend], tmp_path: Path
) -> None:
    block, backend = workspace
    harness = harness_on(backend, tmp_path)
    make_raw(harness)
    going = Job(input_datasets=PREP.input_datasets, output_datasets=PREP.output_datasets,
                keeps_running=True)  # fmt: skip
    pipeline: PipelineSpec = chain(harness, prep=going)
    seen: dict[str, str] = {}

    @flow
    def long() -> None:
        seen["flow_run"] = str(flow_run.id)
        run_pipeline(block, pipeline, retry_delay_seconds=0)

    def step_started() -> bool:
        return any(r.parent_run_id and r.state.status is RunStatus.RUNNING
                   for r in backend.list_runs())  # fmt: skip

    with canceling_the_flow_run(seen, step_started), pytest.raises(JobFailedError):
        long()
    (pipeline_run,) = [r for r in backend.list_runs() if r.tags.get("pipeline")]
    assert pipeline_run.state.status is RunStatus.CANCELED
    steps = {s.step: s.run for s in backend.pipeline_steps(pipeline_run.ref)}
    prep = steps["prep"]
    assert prep is not None and backend.get_state(prep).status is RunStatus.CANCELED
    assert steps["train"] is None
