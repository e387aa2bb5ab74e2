"""`--azureml` on SDK v2 (hi-ml 0.5's default): the script submitted through the v2 stand-in.

`azureml_backend` (the door's one seam to AzureML) gives the v2 stand-in's backend, and fails
a test that asks for SDK v1; everything from there on is the real AzureML v2 backend building
real azure-ai-ml entities. The same behaviours as SDK v1's tests (test_submission_azureml.py):
the banner with the link, most_recent_run.txt, the wait with the children, failures, and bad
input refused before anything is submitted or written.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from himl_tasks import (
    ComputeNotFoundError,
    DatasetNotFoundError,
    InvalidInputError,
    JobFailedError,
    JobTimeoutError,
    submit_to_azure_if_needed,
)
from himl_tasks.backends.azureml_v2 import AzureMLV2Backend, sdk
from himl_tasks.backends.backend_run import BackendRun
from himl_tasks.himl import (
    azureml_workspace,
    download_checkpoints_from_run_id,
    download_files_from_run_id,
    fetch_run,
    get_most_recent_run,
)
from himl_tasks.testing.files import write_tree
from tests.backends.azureml_v2_execution import ExecutingAzureMLV2Service
from tests.backends.azureml_v2_service import (
    KEEPS_RUNNING,
    SCRIPT_ERROR,
    TO_FAILED,
    FakeAzureMLV2Service,
    Outcome,
)
from tests.himl.executed_script import SUBMISSION_ARGUMENTS, prepare_executed_script

# An AzureML config.json as the portal offers it: with it in the project, hi-ml's helpers
# (resolve_backend's order) use AzureML, here the stand-in.
CONFIG_JSON = (
    '{"subscription_id": "00000000-0000-0000-0000-000000000000", '
    '"resource_group": "rg-himl", "workspace_name": "ws-himl-v2"}'
)


def offline_ml_client() -> Any:
    """A real `MLClient`, built offline (nothing is sent until an operation is called)."""
    from azure.identity import AzureCliCredential

    return sdk.ml().MLClient(AzureCliCredential(), "sub", "rg", "ws")


class AzureMLSeam:
    """`azureml_backend` giving the v2 stand-in's backend; it keeps what it was asked."""

    def __init__(self, backend: AzureMLV2Backend) -> None:
        self.backend = backend
        self.workspaces: list[Any] = []

    def __call__(
        self, aml_workspace: Any = None, *args: Any, sdk: str = "v2", **kwargs: Any
    ) -> Any:
        assert sdk == "v2", "--azureml submits with SDK v2 unless strictly_aml_v1=True"
        self.workspaces.append(aml_workspace)
        return self.backend


@pytest.fixture
def seam(
    himl_project: Path, aml_v2: AzureMLV2Backend, monkeypatch: pytest.MonkeyPatch
) -> AzureMLSeam:
    """A project whose AzureML workspace is the v2 stand-in; `sample.py` in it is the script."""
    aml_v2.max_poll_seconds = 0.05  # type: ignore[misc]  # the stand-in answers at once
    seam = AzureMLSeam(aml_v2)
    monkeypatch.setattr(azureml_workspace, "azureml_backend", seam)
    (himl_project / "sample.py").write_text("print('the job')\n", encoding="utf-8")
    monkeypatch.setattr(sys, "argv", [str(himl_project / "sample.py"), "--azureml", "-n", "3"])
    return seam


def test_the_flag_submits_a_v2_command_job_with_the_script_and_its_arguments(
    seam: AzureMLSeam, aml_v2_service: FakeAzureMLV2Service, himl_project: Path
) -> None:
    with pytest.raises(SystemExit) as exited:
        submit_to_azure_if_needed(compute_cluster_name="cpu-cluster")

    assert exited.value.code == 0
    ((job, snapshot),) = aml_v2_service.submitted
    assert job.type == "command" and job.command == "python sample.py -n 3"
    assert job.experiment_name == "sample"  # the script's name, as hi-ml
    assert job.compute == "cpu-cluster"
    assert job.tags["commandline_args"] == "-n 3"  # hi-ml's default tag
    assert job.environment_variables["MKL_SERVICE_FORCE_INTEL"] == "1"  # hi-ml's variables
    assert "sample.py" in snapshot
    assert (himl_project / "most_recent_run.txt").read_text().strip() == f"sample:{job.name}"
    assert seam.workspaces == [None]  # found as hi-ml finds it, asked for SDK v2


def test_the_run_is_waited_for_its_log_streamed_and_the_banner_has_the_link(
    seam: AzureMLSeam,
    aml_v2_service: FakeAzureMLV2Service,
    capsys: pytest.CaptureFixture[str],
) -> None:
    seen: list[Any] = []

    with pytest.raises(SystemExit):
        submit_to_azure_if_needed(
            compute_cluster_name="cpu-cluster",
            experiment_name="door test",
            tags={"team": "imaging"},
            wait_for_completion=True,
            wait_for_completion_show_output=True,
            after_submission=lambda run: seen.append((run, run.get_status())),
        )

    ((job, _),) = aml_v2_service.submitted
    assert job.experiment_name == "door_test" and job.tags["team"] == "imaging"
    assert "commandline_args" not in job.tags  # given tags replace hi-ml's default one
    ((run, status),) = seen
    # SDK v2's run object is a BackendRun (hi-ml 0.5 gives an azure.ai.ml Job): after the wait.
    assert isinstance(run, BackendRun) and run.id == job.name and status == "Completed"
    out = capsys.readouterr().out
    assert f"Successfully queued run {job.name} in experiment door_test" in out
    assert f"Run recovery id: door_test:{job.name}" in out
    studio = aml_v2_service.job(job.name).studio_url
    assert studio and f"Run URL: {studio}" in out
    assert out.index("loading data") < out.index("epoch 1 loss 0.5")


def test_after_submission_taking_two_arguments_gets_the_run_and_ml_client_as_in_hi_ml_0_5(
    seam: AzureMLSeam, aml_v2_service: FakeAzureMLV2Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    # hi-ml 0.5 calls after_submission(job, ml_client) on SDK v2; the backend's MLClient is
    # its service's (MLClientService.ml_client), here set on the stand-in.
    client = offline_ml_client()
    monkeypatch.setattr(aml_v2_service, "ml_client", client, raising=False)
    seen: list[Any] = []

    with pytest.raises(SystemExit):
        submit_to_azure_if_needed(
            compute_cluster_name="cpu-cluster",
            after_submission=lambda job, ml_client: seen.append((job.id, ml_client)),
        )

    ((job, _),) = aml_v2_service.submitted
    assert seen == [(job.name, client)]


def test_ml_client_is_the_workspace_on_v2(
    seam: AzureMLSeam, aml_v2_service: FakeAzureMLV2Service
) -> None:
    client = offline_ml_client()

    with pytest.raises(SystemExit):
        submit_to_azure_if_needed(compute_cluster_name="cpu-cluster", ml_client=client)

    assert seam.workspaces == [client]
    assert len(aml_v2_service.submitted) == 1


def test_a_failed_job_raises_job_failed(
    seam: AzureMLSeam, aml_v2_service: FakeAzureMLV2Service
) -> None:
    aml_v2_service.next_outcome = Outcome(statuses=TO_FAILED, error=SCRIPT_ERROR)

    with pytest.raises(JobFailedError, match="ZeroDivisionError"):
        submit_to_azure_if_needed(compute_cluster_name="cpu-cluster", wait_for_completion=True)


def test_hyperparam_args_submit_a_v2_sweep_job_and_a_failed_trial_fails_the_wait(
    seam: AzureMLSeam, aml_v2_service: FakeAzureMLV2Service
) -> None:
    # hi-ml 0.5's create_grid_hyperparam_args_v2(["1", "2"], "fold", "val/loss").
    hyperparam_args = {
        "max_total_trials": 2,
        "parameter_sampling": {"fold": sdk.sweep().Choice(values=["1", "2"])},
        "sampling_algorithm": "grid",
        "primary_metric": "val/loss",
        "goal": "Minimize",
    }
    trial_failed = Outcome(statuses=TO_FAILED, error=SCRIPT_ERROR)
    aml_v2_service.next_outcome = Outcome(children=(Outcome(), trial_failed))

    with pytest.raises(JobFailedError, match="ZeroDivisionError"):
        submit_to_azure_if_needed(
            compute_cluster_name="cpu-cluster",
            hyperparam_args=hyperparam_args,
            wait_for_completion=True,
        )

    ((sweep, _),) = aml_v2_service.submitted
    assert sweep.type == "sweep"
    assert sweep.objective.primary_metric == "val/loss" and sweep.objective.goal == "minimize"
    assert sweep.limits.max_total_trials == 2
    assert sweep.search_space["fold"].values == ["1", "2"]
    assert sweep.trial.command.startswith("python sample.py -n 3 --fold ")


def test_exit_on_completion_false_returns_the_run_as_a_backend_run(
    seam: AzureMLSeam, aml_v2_service: FakeAzureMLV2Service
) -> None:
    run = submit_to_azure_if_needed(compute_cluster_name="cpu-cluster", exit_on_completion=False)

    ((job, _),) = aml_v2_service.submitted
    assert isinstance(run, BackendRun)
    assert (run.id, run.experiment.name) == (job.name, "sample")


def test_the_wait_has_a_deadline_and_the_run_goes_on(
    seam: AzureMLSeam, aml_v2_service: FakeAzureMLV2Service, himl_project: Path
) -> None:
    aml_v2_service.next_outcome = Outcome(statuses=KEEPS_RUNNING + ("Running",) * 1000)

    with pytest.raises(JobTimeoutError, match="still (Queued|Running)"):
        submit_to_azure_if_needed(
            compute_cluster_name="cpu-cluster", wait_for_completion=True, wait_timeout_seconds=0.3
        )

    ((job, _),) = aml_v2_service.submitted
    assert (himl_project / "most_recent_run.txt").read_text().strip() == f"sample:{job.name}"


def _ml_client_with(**parameters: Any) -> dict[str, Any]:
    return {"compute_cluster_name": "cpu-cluster", "ml_client": offline_ml_client(), **parameters}


@pytest.mark.parametrize(
    ("parameters", "error", "message"),
    [
        ({"compute_cluster_name": "no-such-cluster"}, ComputeNotFoundError, "no-such-cluster"),
        (
            {"compute_cluster_name": "cpu-cluster", "input_datasets": ["missing_data"]},
            DatasetNotFoundError,
            "missing_data",
        ),
        # SDK v1's sweep, with SDK v2: hi-ml 0.5 drops it and submits one job; refused here.
        (
            {"compute_cluster_name": "cpu-cluster", "hyperdrive_config": object()},
            InvalidInputError,
            "pass strictly_aml_v1=True",
        ),
        (
            _ml_client_with(strictly_aml_v1=True),
            InvalidInputError,
            "strictly_aml_v1=True submits with SDK v1",
        ),
        (_ml_client_with(aml_workspace=object()), InvalidInputError, "give one workspace"),
        # hi-ml 0.5 drops it on SDK v2 (get_environment_v2 does not take it); the v2 backend
        # refuses it with what to do instead.
        (
            {"compute_cluster_name": "cpu-cluster", "private_pip_wheel_path": "environment.yml"},
            InvalidInputError,
            "private_pip_wheel_path is not supported by the AzureML v2 backend",
        ),
        (
            {
                "compute_cluster_name": "cpu-cluster",
                "aml_workspace": offline_ml_client(),
                "strictly_aml_v1": True,
            },
            InvalidInputError,
            "drop strictly_aml_v1",
        ),
        (
            {
                "compute_cluster_name": "cpu-cluster",
                "hyperparam_args": {
                    "parameter_sampling": {"lr": sdk.sweep().Normal(mu=0.0, sigma=1.0)}
                },
            },
            InvalidInputError,
            "Normal",
        ),
    ],
)
def test_bad_input_is_refused_before_anything_is_submitted(
    seam: AzureMLSeam,
    aml_v2_service: FakeAzureMLV2Service,
    himl_project: Path,
    parameters: dict[str, Any],
    error: type[Exception],
    message: str,
) -> None:
    with pytest.raises(error, match=message):
        submit_to_azure_if_needed(**parameters)

    assert aml_v2_service.create_requests == 0 and aml_v2_service.submitted == []
    assert aml_v2_service.data_assets == {} and aml_v2_service.environments == {}
    assert not (himl_project / "most_recent_run.txt").exists()
    assert not (himl_project / ".amlignore").exists()


def test_the_code_after_the_call_runs_inside_the_v2_job_and_hi_ml_helpers_read_the_run(
    executing_aml_v2: AzureMLV2Backend,
    executing_aml_v2_service: ExecutingAzureMLV2Service,
    himl_project: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # The executing stand-in runs the job: the same script, started by AzureML's compute,
    # finds itself inside the v2 job and goes on past the call.
    monkeypatch.setattr(azureml_workspace, "azureml_backend", AzureMLSeam(executing_aml_v2))
    (himl_project / "config.json").write_text(CONFIG_JSON, encoding="utf-8")
    store = executing_aml_v2_service.store("workspaceblobstore")
    prepare_executed_script(himl_project, store, monkeypatch, strictly_aml_v1=False)

    with pytest.raises(SystemExit) as exited:
        submit_to_azure_if_needed(**SUBMISSION_ARGUMENTS)

    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert "after the call, in AzureML: True ['--epochs', '2']" in out  # the streamed log
    assert not (himl_project / "outputs").exists()  # nothing after the call ran here
    # hi-ml's helpers find the v2 run (the workspace from config.json: the seam, asked v2).
    run = get_most_recent_run(himl_project / "most_recent_run.txt")
    assert isinstance(run, BackendRun) and run.get_status() == "Completed"
    assert fetch_run(None, run.id).id == run.id
    assert run.get_metrics() == {"total": 6}
    download_files_from_run_id(run.id, himl_project / "fetched", prefix="outputs/total.txt")
    assert (himl_project / "fetched" / "outputs" / "total.txt").read_text() == "6"
    download_checkpoints_from_run_id(run.id, "outputs/total.txt", himl_project / "checkpoint")
    assert (himl_project / "checkpoint" / "outputs" / "total.txt").read_text() == "6"
    ref = executing_aml_v2.get_run_ref(run.id)
    (written,) = executing_aml_v2.run_outputs(ref)
    assert (written.name, written.version) == ("himl_out", 1)


def test_a_plain_run_downloads_its_input_from_the_v2_workspace_of_ml_client(
    seam: AzureMLSeam,
    aml_v2_service: FakeAzureMLV2Service,
    himl_project: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # hi-ml 0.5 refuses this on SDK v2 ("does not support downloading datasets from AzureML
    # for local execution"); here the dataset comes through the transfer engine.
    aml_v2_service.store("workspaceblobstore").upload_folder(
        write_tree(himl_project.parent / "raw", {"numbers.txt": b"1 2 3\n"}), "himl_in"
    )
    monkeypatch.setattr(sys, "argv", [str(himl_project / "sample.py")])
    client = offline_ml_client()

    run_info = submit_to_azure_if_needed(input_datasets=["himl_in"], ml_client=client)

    assert not run_info.is_running_in_azure_ml
    assert (run_info.input_datasets[0] / "numbers.txt").read_bytes() == b"1 2 3\n"
    assert seam.workspaces == [client] and aml_v2_service.submitted == []


def test_ctrl_c_while_waiting_exits_130_and_the_v2_job_goes_on(
    seam: AzureMLSeam,
    aml_v2_service: FakeAzureMLV2Service,
    himl_project: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Ctrl-C is SIGINT to this process: sent once the wait is under way (the job keeps
    # Running far longer than the timer), it stops the wait, not the job.
    aml_v2_service.next_outcome = Outcome(statuses=KEEPS_RUNNING + ("Running",) * 100_000)
    timer = threading.Timer(1.0, lambda: os.kill(os.getpid(), signal.SIGINT))
    timer.start()
    try:
        with pytest.raises(SystemExit) as exited:
            submit_to_azure_if_needed(
                compute_cluster_name="cpu-cluster",
                wait_for_completion=True,
                wait_timeout_seconds=60,
            )
    finally:
        timer.cancel()

    assert exited.value.code == 130
    ((job, _),) = aml_v2_service.submitted
    assert aml_v2_service.job(job.name).status == "Running"  # not canceled
    assert f"Stopped waiting for run {job.name}: the run itself goes on" in capsys.readouterr().err
    assert (himl_project / "most_recent_run.txt").read_text().strip() == f"sample:{job.name}"
