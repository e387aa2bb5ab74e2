"""A v2 job's state as the backend reads it: every status mapped, failures told apart.

The statuses are the SDK's own enum's values; the failures come from the v2 service
stand-in's run details, with the error payloads the service sends (azureml_v2_service.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from himl_tasks.backends.azureml_v2 import AzureMLV2Backend, sdk
from himl_tasks.backends.azureml_v2.run_status import V2_STATUSES, v2_run_status
from himl_tasks.runs import FailureKind, RunStatus
from tests.backends import azureml_v2_service as v2
from tests.backends.conftest import azureml_job


def rest_job_statuses() -> list[Any]:
    """Every member of the REST `JobStatus` enum azure-ai-ml sends."""
    with sdk.quiet():
        from azure.ai.ml._restclient.arm_ml_service.models import JobStatus
    return list(JobStatus)


def test_every_status_of_the_rest_enum_is_mapped_by_its_value() -> None:
    statuses = rest_job_statuses()

    assert {status.value for status in statuses} == set(V2_STATUSES)
    assert len(statuses) == 14  # the 13 the SDK documents, and Unknown
    # The enum member itself maps by its value (str() of it is not its value on 3.11).
    assert all(v2_run_status(status) is V2_STATUSES[status.value] for status in statuses)


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("Completed", RunStatus.COMPLETED),
        ("Failed", RunStatus.FAILED),
        ("Canceled", RunStatus.CANCELED),
        ("NotResponding", RunStatus.NOT_RESPONDING),
        ("Provisioning", RunStatus.PREPARING),
        ("Paused", RunStatus.QUEUED),
        ("Unknown", RunStatus.QUEUED),
    ],
)
def test_terminal_statuses_are_terminal_and_others_go_on(status: str, expected: RunStatus) -> None:
    assert v2_run_status(status) is expected
    assert expected.is_terminal is (status in v2.ENDED)


def test_a_status_this_code_does_not_know_is_not_taken_for_an_end(
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert v2_run_status("Hibernating") is RunStatus.QUEUED
    assert "Hibernating" in caplog.text


@pytest.mark.parametrize(
    ("statuses", "error", "kind"),
    [
        (v2.TO_FAILED, v2.script_error(2), FailureKind.USER_ERROR),
        (v2.TO_FAILED, v2.PREEMPTION_ERROR, FailureKind.PREEMPTED),
        (v2.TO_FAILED, v2.SYSTEM_ERROR, FailureKind.INFRASTRUCTURE),
        (("Starting", "Running", "NotResponding"), None, FailureKind.INFRASTRUCTURE),
    ],
)
def test_failures_are_told_apart_from_the_run_details(
    aml_v2: AzureMLV2Backend,
    aml_v2_service: v2.FakeAzureMLV2Service,
    project: Path,
    statuses: tuple[str, ...],
    error: dict[str, Any] | None,
    kind: FailureKind,
) -> None:
    aml_v2_service.next_outcome = v2.Outcome(statuses=statuses, error=error)

    state = aml_v2.wait(aml_v2.submit(azureml_job(project, "print('hi')\n")), poll=0)

    assert (state.failure_kind, state.is_terminal) == (kind, True)
    if error is not None:
        assert error["error"]["message"].splitlines()[-1] in state.error


def test_states_read_times_and_the_studio_link(aml_v2: AzureMLV2Backend, project: Path) -> None:
    ref = aml_v2.submit(azureml_job(project, "print('hi')\n"))

    first = aml_v2.get_state(ref)
    final = aml_v2.wait(ref, poll=0)

    assert first.status is RunStatus.PREPARING and first.started_at is None
    assert final.created_at is not None and final.ended_at is not None
    assert final.portal_url == ref.portal_url != ""
    assert aml_v2.run_tags(ref)["priority"] == "dedicated"


def test_a_distributed_jobs_log_is_rank_0s(
    aml_v2: AzureMLV2Backend, aml_v2_service: v2.FakeAzureMLV2Service, project: Path
) -> None:
    # A distributed v2 job has one log per process (std_log_process_<n>.txt); the SDK's own
    # `jobs.stream` follows rank 0's, and so does the backend.
    aml_v2_service.next_outcome = v2.Outcome(log_lines=())
    ref = aml_v2.submit(azureml_job(project, "print('hi')\n"))
    assert aml_v2.wait(ref, poll=0).succeeded
    for rank in (1, 0):
        aml_v2_service.write_run_file(
            ref.run_id, f"user_logs/std_log_process_{rank}.txt", f"rank {rank}\n"
        )
    aml_v2_service.write_run_file(ref.run_id, "user_logs/std_log_ps.txt.bak", "not a log\n")

    assert list(aml_v2.iter_logs(ref)) == ["rank 0"]


def test_a_job_canceled_at_its_timeout_timed_out_and_one_canceled_before_was_canceled(
    aml_v2: AzureMLV2Backend, aml_v2_service: v2.FakeAzureMLV2Service, project: Path
) -> None:
    # AzureML cancels a job that reaches its limits.timeout; a person's cancel ends it sooner.
    aml_v2_service.next_outcome = v2.Outcome(statuses=v2.TIMES_OUT, timed_out=True)
    spec = azureml_job(project, "print('hi')\n", max_run_duration="2h")
    timed_out = aml_v2.wait(aml_v2.submit(spec), poll=0)
    aml_v2_service.next_outcome = v2.Outcome(statuses=v2.KEEPS_RUNNING)
    canceled_ref = aml_v2.submit(spec)
    aml_v2.get_state(canceled_ref)
    aml_v2.cancel(canceled_ref)
    canceled = aml_v2.wait(canceled_ref, poll=0)

    assert (timed_out.status, timed_out.failure_kind) == (RunStatus.CANCELED, FailureKind.TIMEOUT)
    assert "timeout of 7200 s" in timed_out.error
    assert (canceled.status, canceled.failure_kind) == (RunStatus.CANCELED, FailureKind.CANCELED)
