"""The job tasks against a real Prefect API and real local jobs (tiny scripts)."""

from __future__ import annotations

from pathlib import Path

import pytest
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import StateType
from prefect.runtime import flow_run

from himl_tasks.backends.local.backend import LocalBackend
from himl_tasks.backends.local.clusters import Preemption
from himl_tasks.errors import JobFailedError
from himl_tasks.job_spec import JobSpec, Priority
from himl_tasks.jobs.run_to_completion import JobResult
from himl_tasks.prefect import run_job, submit_job
from himl_tasks.runs import FailureKind, RunStatus
from tests.prefect.conftest import canceling_the_flow_run, epochs_spec


def train_on_spot(block: str, project: Path) -> JobResult:
    """Runs 8 epochs of 0.3 s as a low-priority job on the cluster "spot", in a flow."""

    @flow
    def train() -> JobResult:
        spec = epochs_spec(project, 8, 0.3, compute="spot", priority=Priority.LOW_PRIORITY)
        return run_job(block, spec, max_retries=2, retry_delay_seconds=0)

    return train()


def test_a_preempted_job_is_resubmitted_and_resumes(
    workspace: tuple[str, LocalBackend], project: Path
) -> None:
    block, backend = workspace
    backend.create_compute_cluster(
        "spot", max_concurrent_runs=2,
        preemption=Preemption(after_seconds=1.5, mode="fail", max_preemptions=1),
    )  # fmt: skip

    result = train_on_spot(block, project)
    first, second = (backend.get_run_ref(r) for r in result.attempts)
    assert backend.get_state(first).failure_kind is FailureKind.PREEMPTED
    assert result.state.status is RunStatus.COMPLETED and result.run == second
    done = [int(m.value) for m in result.metric_history if m.name == "epoch_done"]
    assert sorted(done) == list(range(8))  # every epoch trained exactly once
    resumed = [int(m.value) for m in backend.get_metrics(second)]
    assert 0 < resumed[0] < 8  # the second run started after the checkpointed epochs
    again = train_on_spot(block, project)  # a re-run finds the resumed run that completed
    assert again.run == second and again.attempts == [second.recovery_id]
    assert len(backend.registry.runs()) == 2


def test_a_platform_restart_is_waited_for_not_resubmitted(
    workspace: tuple[str, LocalBackend], project: Path
) -> None:
    block, backend = workspace
    backend.create_compute_cluster(
        "spot", preemption=Preemption(after_seconds=1.5, mode="restart",
                                      restart_delay_seconds=0.2),
    )  # fmt: skip

    result = train_on_spot(block, project)
    assert len(result.attempts) == 1
    assert [a["failure_kind"] for a in backend.attempts(result.run)] == ["preempted", None]
    assert sorted(int(m.value) for m in result.metric_history) == list(range(8))


def test_a_user_error_is_not_retried(workspace: tuple[str, LocalBackend], project: Path) -> None:
    block, backend = workspace

    @flow
    def broken() -> JobResult:
        spec = JobSpec(entry_script="broken.py", snapshot_root=project)
        return run_job(block, spec, max_retries=3, retry_delay_seconds=0)

    with pytest.raises(JobFailedError) as raised:
        broken()
    state = raised.value.state
    assert state.failure_kind is FailureKind.USER_ERROR  # type: ignore[attr-defined]
    assert "ZeroDivisionError" in str(raised.value)
    assert len(backend.registry.runs()) == 1


def test_a_rerun_after_a_crash_does_not_submit_a_completed_job_again(
    workspace: tuple[str, LocalBackend], project: Path
) -> None:
    block, backend = workspace

    @flow
    def once() -> str:
        return run_job(block, epochs_spec(project, 2, 0), retry_delay_seconds=0).run.run_id

    first, second = once(), once()
    assert first == second and len(backend.registry.runs()) == 1
    (project / "epochs.py").write_text((project / "epochs.py").read_text() + "\n# changed\n")
    assert once() != first  # a changed snapshot is a different job


def test_canceling_the_flow_run_cancels_its_job(
    workspace: tuple[str, LocalBackend], project: Path
) -> None:
    block, backend = workspace
    seen: dict[str, str] = {}

    @flow
    def long() -> None:
        seen["flow_run"] = str(flow_run.id)
        run_job(block, epochs_spec(project, 100, 0.2), retry_delay_seconds=0)

    with (
        canceling_the_flow_run(seen, lambda: bool(backend.registry.runs()), pause=1.0),
        pytest.raises(JobFailedError),
    ):
        long()
    (run,) = backend.registry.runs()
    assert run.status is RunStatus.CANCELED
    with get_client(sync_client=True) as client:
        state = client.read_flow_run(seen["flow_run"]).state
    assert state is not None and state.type in (StateType.CANCELLING, StateType.FAILED)


def test_submit_job_returns_the_run(workspace: tuple[str, LocalBackend], project: Path) -> None:
    block, backend = workspace

    @flow
    def submit() -> str:
        return submit_job(block, epochs_spec(project, 1, 0)).recovery_id

    ref = backend.get_run_ref(submit())
    assert backend.wait(ref).succeeded
