"""The AzureML v2 service stand-in behaves like the service where the backend looks."""

from __future__ import annotations

from pathlib import Path

import pytest
from azure.core.exceptions import HttpResponseError

from himl_tasks.backends.azureml_v2 import sdk
from tests.backends.azureml_v2_service import (
    ARTIFACT_DATASTORE,
    LOG_FILE,
    PREEMPTION_ERROR,
    FakeAzureMLV2Service,
    Outcome,
)


def command_job(project: Path, name: str, compute: str | None = "cpu-cluster") -> object:
    (project / "job.py").write_text("print('job')\n")
    with sdk.quiet():
        return sdk.ml().command(
            name=name,
            command="python job.py",
            code=str(project),
            environment="azureml:some-environment:1",
            compute=compute,
            experiment_name="exp",
        )


def test_a_job_moves_one_status_per_poll_in_the_services_order(
    aml_v2_service: FakeAzureMLV2Service, tmp_path: Path
) -> None:
    aml_v2_service.next_outcome = Outcome(log_lines=("a", "b"), files={"outputs/x": b"x"})
    aml_v2_service.create_job(command_job(tmp_path, "job-1"))

    seen = [aml_v2_service.run_details("job-1")["status"] for _ in range(8)]

    assert seen == [
        "Preparing", "Queued", "Running", "Running", "Finalizing", "Completed", "Completed",
        "Completed",
    ]  # fmt: skip
    assert aml_v2_service.job("job-1").status == "Completed"
    store = aml_v2_service.store(ARTIFACT_DATASTORE)
    assert sorted(f.name for f in store.list("ExperimentRun/dcid.job-1/")) == [
        "ExperimentRun/dcid.job-1/outputs/x",
        f"ExperimentRun/dcid.job-1/{LOG_FILE}",
    ]


def test_a_serverless_job_provisions_and_a_preempted_one_reports_it(
    aml_v2_service: FakeAzureMLV2Service, tmp_path: Path
) -> None:
    aml_v2_service.next_outcome = Outcome(
        statuses=("Starting", "Queued", "Running", "Failed"), error=PREEMPTION_ERROR
    )
    aml_v2_service.create_job(command_job(tmp_path, "job-2", compute=None))

    seen = [aml_v2_service.run_details("job-2") for _ in range(5)]

    assert [d["status"] for d in seen] == [
        "Provisioning", "Queued", "Running", "Failed", "Failed",
    ]  # fmt: skip
    assert "PreemptionError" in seen[-1]["error"]["error"]["message"]


def test_a_second_job_of_one_name_is_refused(
    aml_v2_service: FakeAzureMLV2Service, tmp_path: Path
) -> None:
    aml_v2_service.create_job(command_job(tmp_path, "job-3"))

    with pytest.raises(HttpResponseError, match="A job with this name already exists"):
        aml_v2_service.create_job(command_job(tmp_path, "job-3"))
