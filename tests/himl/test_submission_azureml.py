"""`--azureml` with `strictly_aml_v1=True`: the script submitted to AzureML through SDK v1.

`azureml_backend` (the door's one seam to AzureML) gives the v1 stand-in's backend when SDK v1
is asked for; everything from there on is the real AzureML v1 backend building real
azureml-core objects. SDK v2, the default, is tested in test_submission_azureml_v2.py.
"""

from __future__ import annotations

import sys
import time
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
from himl_tasks.backends.azureml_v1 import AzureMLV1Backend
from himl_tasks.himl import azureml_workspace
from himl_tasks.testing.files import write_tree
from tests.backends.azureml_service import SCRIPT_ERROR, FakeAzureMLService, Outcome
from tests.himl.executed_script import SUBMISSION_ARGUMENTS, prepare_executed_script


def submit_v1(**parameters: Any) -> Any:
    """`submit_to_azure_if_needed(..., strictly_aml_v1=True)`: hi-ml 0.5's way to SDK v1."""
    return submit_to_azure_if_needed(strictly_aml_v1=True, **parameters)


def v1_only(backend: AzureMLV1Backend) -> Any:
    """`azureml_backend` giving the v1 stand-in's backend, and failing a test that asks v2."""

    def azureml_backend(*args: Any, sdk: str = "v2", **kwargs: Any) -> AzureMLV1Backend:
        assert sdk == "v1", "strictly_aml_v1=True submits with SDK v1"
        return backend

    return azureml_backend


@pytest.fixture
def on_azureml(
    himl_project: Path, aml: AzureMLV1Backend, monkeypatch: pytest.MonkeyPatch
) -> AzureMLV1Backend:
    """A project whose AzureML workspace is the stand-in; `sample.py` in it is the script."""
    monkeypatch.setattr(azureml_workspace, "azureml_backend", v1_only(aml))
    (himl_project / "sample.py").write_text("print('the job')\n", encoding="utf-8")
    monkeypatch.setattr(sys, "argv", [str(himl_project / "sample.py"), "--azureml", "-n", "3"])
    return aml


def test_the_flag_submits_the_script_with_its_arguments_and_exits(
    on_azureml: AzureMLV1Backend, aml_service: FakeAzureMLService, himl_project: Path
) -> None:
    with pytest.raises(SystemExit) as exited:
        submit_v1(compute_cluster_name="cpu-cluster")

    assert exited.value.code == 0
    ((experiment, config, tags, snapshot),) = aml_service.submitted
    assert experiment == "sample"  # the script's name, as hi-ml
    assert config.script == "sample.py" and list(config.arguments) == ["-n", "3"]
    assert config.run_config.target == "cpu-cluster"
    assert tags["commandline_args"] == "-n 3"  # hi-ml's default tag
    assert "sample.py" in snapshot
    (run_id,) = aml_service.runs
    assert (himl_project / "most_recent_run.txt").read_text().strip() == f"sample:{run_id}"
    # hi-ml's variables reach the job, the user's over them.
    assert config.run_config.environment_variables["MKL_SERVICE_FORCE_INTEL"] == "1"


def test_the_run_is_waited_for_its_log_streamed_then_after_submission_gets_the_run(
    on_azureml: AzureMLV1Backend,
    aml_service: FakeAzureMLService,
    capsys: pytest.CaptureFixture[str],
) -> None:
    seen: list[Any] = []

    with pytest.raises(SystemExit):
        submit_v1(
            compute_cluster_name="cpu-cluster",
            experiment_name="door test",
            tags={"team": "imaging"},
            wait_for_completion=True,
            wait_for_completion_show_output=True,
            after_submission=lambda run: seen.append((run.id, run.get_status())),
        )

    ((experiment, _, tags, _),) = aml_service.submitted
    assert experiment == "door_test" and tags["team"] == "imaging"
    assert "commandline_args" not in tags  # given tags replace hi-ml's default one
    (run_id,) = aml_service.runs
    # The azureml Run itself, after the wait (as hi-ml calls it).
    assert seen == [(run_id, "Completed")]
    out = capsys.readouterr().out
    assert f"Successfully queued run {run_id} in experiment door_test" in out
    assert f"Run URL: https://ml.azure.com/runs/{run_id}" in out
    assert out.index("loading data") < out.index("epoch 1 loss 0.5") < out.index("completed")


def test_a_failed_run_raises_job_failed(
    on_azureml: AzureMLV1Backend, aml_service: FakeAzureMLService
) -> None:
    aml_service.next_outcome = Outcome(statuses=("Queued", "Running", "Failed"), error=SCRIPT_ERROR)
    with pytest.raises(JobFailedError, match="ZeroDivisionError"):
        submit_v1(compute_cluster_name="cpu-cluster", wait_for_completion=True)


def test_a_failed_trial_fails_the_wait_as_hi_ml_checks_children(
    on_azureml: AzureMLV1Backend, aml_service: FakeAzureMLService
) -> None:
    trial_failed = Outcome(statuses=("Running", "Failed"), error=SCRIPT_ERROR)
    aml_service.next_outcome = Outcome(children=(Outcome(), trial_failed))

    with pytest.raises(JobFailedError, match="Failed"):
        submit_v1(compute_cluster_name="cpu-cluster", wait_for_completion=True)


def test_hyperdrive_config_is_submitted_with_our_run_config(
    on_azureml: AzureMLV1Backend, aml_service: FakeAzureMLService
) -> None:
    from azureml.core import ScriptRunConfig
    from azureml.train.hyperdrive import (
        HyperDriveConfig,
        PrimaryMetricGoal,
        RandomParameterSampling,
        choice,
    )

    # hi-ml's example 8: the run_config given is a placeholder, replaced by the job's.
    hyperdrive = HyperDriveConfig(
        run_config=ScriptRunConfig(source_directory=""),
        hyperparameter_sampling=RandomParameterSampling({"--kernel": choice("linear", "rbf")}),
        primary_metric_name="Accuracy",
        primary_metric_goal=PrimaryMetricGoal.MAXIMIZE,
        max_total_runs=2,
    )

    with pytest.raises(SystemExit):
        submit_v1(compute_cluster_name="cpu-cluster", hyperdrive_config=hyperdrive)

    ((_, config, tags, snapshot),) = aml_service.submitted
    assert config is hyperdrive
    assert config._run_config.script == "sample.py"
    assert list(config._run_config.arguments) == ["-n", "3"]
    assert config._run_config.run_config.target == "cpu-cluster"
    assert tags["commandline_args"] == "-n 3" and "sample.py" in snapshot


def test_datasets_by_name_take_the_default_datastore_and_configs_keep_theirs(
    on_azureml: AzureMLV1Backend, aml_service: FakeAzureMLService, himl_project: Path
) -> None:
    aml_service.store("workspaceblobstore").upload_folder(
        write_tree(himl_project.parent / "src", {"X.csv": b"1\n"}), "himl_sample7_input"
    )
    with pytest.raises(SystemExit):
        submit_v1(
            compute_cluster_name="cpu-cluster",
            default_datastore="workspaceblobstore",
            input_datasets=["himl_sample7_input"],
            output_datasets=["himl_sample4_output"],
        )

    ((_, config, _, _),) = aml_service.submitted
    (consumed,) = config.run_config.data.values()
    assert consumed.name == "INPUT_0"
    (output,) = config.run_config.output_data.values()
    datastore, path = output.destination
    assert datastore.name == "workspaceblobstore" and path.startswith("himl_sample4_output/")
    assert aml_service.datasets["himl_sample7_input"][0].version == 1  # created from the folder


@pytest.mark.parametrize(
    ("parameters", "error", "message"),
    [
        ({"compute_cluster_name": "no-such-cluster"}, ComputeNotFoundError, "no-such-cluster"),
        ({"compute_cluster_name": ""}, InvalidInputError, "compute cluster"),
        (
            {"compute_cluster_name": "cpu-cluster", "input_datasets": ["missing_data"]},
            DatasetNotFoundError,
            "missing_data",
        ),
        (
            {"compute_cluster_name": "cpu-cluster", "hyperdrive_config": "not a config"},
            InvalidInputError,
            "HyperDriveConfig",
        ),
        (
            {"compute_cluster_name": "cpu-cluster", "ml_client": object()},
            InvalidInputError,
            "strictly_aml_v1=True submits with SDK v1",
        ),
    ],
)
def test_bad_input_is_refused_before_anything_is_submitted(
    on_azureml: AzureMLV1Backend,
    aml_service: FakeAzureMLService,
    himl_project: Path,
    parameters: dict[str, Any],
    error: type[Exception],
    message: str,
) -> None:
    with pytest.raises(error, match=message):
        submit_v1(**parameters)

    assert aml_service.submit_requests == 0 and aml_service.submitted == []
    assert not (himl_project / "most_recent_run.txt").exists()
    assert not (himl_project / ".amlignore").exists()


def test_exit_on_completion_false_returns_the_run(
    on_azureml: AzureMLV1Backend, aml_service: FakeAzureMLService
) -> None:
    run = submit_v1(compute_cluster_name="cpu-cluster", exit_on_completion=False)

    (run_id,) = aml_service.runs
    assert run.id == run_id and run is aml_service.runs[run_id]


def test_a_sweep_spec_runs_as_hyperdrive_around_the_job(
    on_azureml: AzureMLV1Backend, aml_service: FakeAzureMLService
) -> None:
    from himl_tasks import Choice, SweepSpec

    sweep = SweepSpec({"--kernel": Choice("linear", "rbf")}, "Accuracy", sampling="grid")
    with pytest.raises(SystemExit):
        submit_v1(compute_cluster_name="cpu-cluster", sweep=sweep)

    ((_, config, _, _),) = aml_service.submitted
    assert type(config).__name__ == "HyperDriveConfig"
    assert list(config._run_config.arguments) == ["-n", "3"]


def test_the_code_after_the_call_runs_inside_the_azureml_job(
    executing_aml: AzureMLV1Backend,
    aml_service: FakeAzureMLService,
    himl_project: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # The stand-in executes the job: the same script, started by AzureML's compute, finds
    # itself inside the run and goes on past the call.
    monkeypatch.setattr(azureml_workspace, "azureml_backend", v1_only(executing_aml))
    store = aml_service.store("workspaceblobstore")
    prepare_executed_script(himl_project, store, monkeypatch, strictly_aml_v1=True)

    with pytest.raises(SystemExit) as exited:
        submit_v1(**SUBMISSION_ARGUMENTS)

    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert "after the call, in AzureML: True ['--epochs', '2']" in out  # the streamed log
    assert not (himl_project / "outputs").exists()  # nothing after the call ran here
    ref = executing_aml.get_run_ref((himl_project / "most_recent_run.txt").read_text().strip())
    executing_aml.download_files(ref, "outputs/total.txt", himl_project / "fetched")
    assert (himl_project / "fetched" / "outputs" / "total.txt").read_text() == "6"
    assert [(m.name, m.value) for m in executing_aml.get_metrics(ref)] == [("total", 6)]
    (written,) = executing_aml.run_outputs(ref)
    assert written.name == "himl_out" and written.path.endswith(ref.run_id)


def test_the_wait_has_a_deadline(
    on_azureml: AzureMLV1Backend, aml_service: FakeAzureMLService, himl_project: Path
) -> None:
    aml_service.next_outcome = Outcome(statuses=("Queued",) + ("Running",) * 1000)

    with pytest.raises(JobTimeoutError, match="still (Queued|Running)"):
        submit_v1(
            compute_cluster_name="cpu-cluster",
            wait_for_completion=True,
            wait_timeout_seconds=0.3,
        )

    # The run goes on; its recovery id is there to look at it again.
    (run_id,) = aml_service.runs
    assert (himl_project / "most_recent_run.txt").read_text().strip() == f"sample:{run_id}"


def test_the_deadline_covers_the_run_and_its_children_together(
    on_azureml: AzureMLV1Backend, aml_service: FakeAzureMLService
) -> None:
    # The parent ends while a child is still Running (each run's state is read on its own):
    # the child gets what is left of the wait, not all of it again.
    stuck_trial = Outcome(statuses=("Running",) * 100_000)
    aml_service.next_outcome = Outcome(
        statuses=("Queued",) + ("Running",) * 5 + ("Completed",), children=(stuck_trial,)
    )
    started = time.monotonic()

    with pytest.raises(JobTimeoutError, match="still Running"):
        submit_v1(
            compute_cluster_name="cpu-cluster", wait_for_completion=True, wait_timeout_seconds=1.0
        )

    assert time.monotonic() - started < 1.3  # it took the run's time plus 1 s before


def test_hi_ml_parameters_reach_the_run_configuration(
    on_azureml: AzureMLV1Backend,
    aml_service: FakeAzureMLService,
    himl_project: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    write_tree(himl_project / "big", {"weights.bin": b"0" * 10})
    monkeypatch.setenv("HIML_EXPERIMENT_NAME", "from_the_environment")  # wins, as in hi-ml

    with pytest.raises(SystemExit):
        submit_v1(
            compute_cluster_name="cpu-cluster",
            experiment_name="given",
            script_params=["--lr", "0.1"],
            environment_variables={"MKL_SERVICE_FORCE_INTEL": "0", "MINE": "yes"},
            ignored_folders=[himl_project / "big"],
            num_nodes=2,
            max_run_duration="1.5h",
            docker_shm_size="16g",
            display_name="first try",
        )

    ((experiment, config, tags, snapshot),) = aml_service.submitted
    assert experiment == "from_the_environment"
    assert list(config.arguments) == ["--lr", "0.1"] and tags["commandline_args"] == "--lr 0.1"
    variables = config.run_config.environment_variables
    assert variables["MKL_SERVICE_FORCE_INTEL"] == "0" and variables["MINE"] == "yes"
    assert not any(name.startswith("big/") for name in snapshot)
    assert config.run_config.node_count == 2
    assert config.run_config.max_run_duration_seconds == 5400
    assert config.run_config.docker.shm_size == "16g"
    (run,) = aml_service.runs.values()
    assert run.display_name == "first try"


def test_hyperparam_args_with_strictly_aml_v1_run_as_hyperdrive(
    on_azureml: AzureMLV1Backend, aml_service: FakeAzureMLService
) -> None:
    # hi-ml 0.5 ignores hyperparam_args on SDK v1 (they reach only submit_run_v2) and would
    # submit one job; here they are the sweep they describe, run as HyperDrive.
    from himl_tasks.backends.azureml_v2 import sdk

    hyperparam_args = {
        "max_total_trials": 2,
        "parameter_sampling": {"fold": sdk.sweep().Choice(values=[0, 1])},
        "sampling_algorithm": "grid",
        "primary_metric": "val/loss",
        "goal": "Minimize",
    }
    with pytest.raises(SystemExit):
        submit_v1(compute_cluster_name="cpu-cluster", hyperparam_args=hyperparam_args)

    ((_, config, _, _),) = aml_service.submitted
    assert type(config).__name__ == "HyperDriveConfig"
    assert config._primary_metric_config["name"] == "val/loss"
    assert list(config._run_config.arguments) == ["-n", "3"]
