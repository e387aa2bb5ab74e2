"""AzureML runs: statuses, failure kinds, logs, files, metrics, children, cancel and sweeps."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest

from himl_tasks.backends.azureml_common.failures import classify_failure, error_text
from himl_tasks.backends.azureml_v1 import AzureMLV1Backend
from himl_tasks.backends.azureml_v1.run_status import (
    AZUREML_STATUSES,
    metrics_from_run,
    to_run_status,
)
from himl_tasks.backends.checkpoint_files import download_checkpoints
from himl_tasks.errors import InvalidInputError
from himl_tasks.job_spec import JobSpec
from himl_tasks.runs import FailureKind, RunStatus
from himl_tasks.sweeps import Choice, cross_validation
from tests.backends.azureml_service import (
    PREEMPTION_ERROR,
    SCRIPT_ERROR,
    SYSTEM_ERROR,
    FakeAzureMLService,
    Outcome,
)
from tests.backends.conftest import write_script

AZUREML_STATUS_NAMES = [
    "Queued",
    "NotStarted",
    "Preparing",
    "Provisioning",
    "Starting",
    "Running",
    "CancelRequested",
    "Canceled",
    "Finalizing",
    "Completed",
    "Failed",
    "Unapproved",
    "NotResponding",
    "Pausing",
    "Paused",
]  # fmt: skip  (azureml._restclient.constants.RunStatus.list(), in its order)


@pytest.fixture
def spec(project: Path) -> JobSpec:
    write_script(project, "train.py", "print('training')\n")
    (project / "environment.yml").write_text("name: job\ndependencies:\n  - python=3.11\n")
    return JobSpec(entry_script="train.py", snapshot_root=project, compute="cpu-cluster")


def test_every_azureml_status_is_mapped() -> None:
    from azureml._restclient.constants import RunStatus as SdkStatuses

    assert sorted(SdkStatuses.list()) == sorted(AZUREML_STATUS_NAMES) == sorted(AZUREML_STATUSES)
    terminal = {name for name in AZUREML_STATUS_NAMES if to_run_status(name).is_terminal}
    assert terminal == {"Completed", "Failed", "Canceled", "NotResponding"}
    assert to_run_status("Provisioning") is RunStatus.PREPARING
    assert to_run_status("Paused") is RunStatus.QUEUED
    assert not to_run_status("SomethingNew").is_terminal


@pytest.mark.parametrize(
    ("status", "details", "kind"),
    [
        ("Failed", {"error": PREEMPTION_ERROR}, FailureKind.PREEMPTED),
        ("Failed", {"error": SCRIPT_ERROR}, FailureKind.USER_ERROR),
        ("Failed", {"error": SYSTEM_ERROR}, FailureKind.INFRASTRUCTURE),
        ("Failed", {}, FailureKind.USER_ERROR),
        ("NotResponding", {}, FailureKind.INFRASTRUCTURE),
        ("Canceled", {}, FailureKind.CANCELED),
        ("Completed", {}, None),
    ],
)
def test_failure_kind_comes_from_the_error_details(
    status: str, details: dict[str, object], kind: FailureKind | None
) -> None:
    run_status = to_run_status(status)
    assert classify_failure(run_status, error_text(details)) is kind
    assert run_status.is_terminal
    assert (run_status is RunStatus.COMPLETED) == (kind is None)


def test_a_run_goes_through_azureml_statuses_to_completed(
    aml: AzureMLV1Backend, spec: JobSpec
) -> None:
    ref = aml.submit(spec)
    seen = []
    while not (state := aml.get_state(ref)).is_terminal:
        seen.append(state.status)
    assert seen == [RunStatus.NOT_STARTED, RunStatus.QUEUED, RunStatus.PREPARING,
                    RunStatus.RUNNING, RunStatus.RUNNING, RunStatus.FINALIZING]  # fmt: skip
    assert state.succeeded and state.failure_kind is None
    assert state.started_at == datetime.datetime(2026, 11, 21, 9, 5, 0, 123456, datetime.UTC)
    assert state.ended_at is not None and state.ended_at > state.started_at
    assert state.portal_url == ref.portal_url


def test_a_preempted_run_is_classified_preempted(
    aml: AzureMLV1Backend, aml_service: FakeAzureMLService, spec: JobSpec
) -> None:
    aml_service.next_outcome = Outcome(
        statuses=("Queued", "Running", "Failed"), error=PREEMPTION_ERROR
    )
    state = aml.wait(aml.submit(spec), poll=0)
    assert (state.status, state.failure_kind) == (RunStatus.FAILED, FailureKind.PREEMPTED)
    assert "PreemptionError: Nodes of this job got pre-empted" in state.error


def test_following_the_log_yields_every_line_until_the_run_ends(
    aml: AzureMLV1Backend, aml_service: FakeAzureMLService, spec: JobSpec
) -> None:
    lines = tuple(f"step {i}" for i in range(6))
    aml_service.next_outcome = Outcome(
        statuses=("Queued", "Running", "Running", "Running", "Completed"), log_lines=lines
    )
    ref = aml.submit(spec)
    assert list(aml.iter_logs(ref)) == []  # nothing written before it runs
    assert list(aml.iter_logs(ref, follow=True, poll=0)) == list(lines)
    assert aml.get_state(ref).succeeded


def test_checkpoints_come_from_the_run_files_in_the_artifact_store(
    aml: AzureMLV1Backend, aml_service: FakeAzureMLService, spec: JobSpec, tmp_path: Path
) -> None:
    # Listing and downloading run files: the Backend contract (test_backend_contract).
    aml_service.next_outcome = Outcome(
        files={
            "outputs/checkpoints/recovery_epoch=1.ckpt": b"one",
            "outputs/checkpoints/recovery_epoch=2.ckpt": b"two" * 1000,
            "outputs/metrics.json": b"{}",
        }
    )
    ref = aml.wait(aml.submit(spec), poll=0).ref
    assert "azureml-logs/70_driver_log.txt" in aml.list_files(ref)
    report = download_checkpoints(aml, ref, tmp_path / "ckpt")
    assert report is not None and report.files == 2 and not report.unverified
    assert (tmp_path / "ckpt/outputs/checkpoints/recovery_epoch=2.ckpt").read_bytes() == (
        b"two" * 1000
    )
    assert not (tmp_path / "ckpt/outputs/metrics.json").exists()


def test_checkpoints_are_downloaded_only_by_local_rank_zero(
    aml: AzureMLV1Backend,
    aml_service: FakeAzureMLService,
    spec: JobSpec,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    aml_service.next_outcome = Outcome(files={"outputs/checkpoints/last.ckpt": b"x"})
    ref = aml.wait(aml.submit(spec), poll=0).ref
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert download_checkpoints(aml, ref, tmp_path) is None
    assert not (tmp_path / "outputs").exists()


def test_metric_tables_lists_and_scalars() -> None:
    when = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    logged = {
        "a": 1, "b": [2, 3], "c": {"value": [4]}, "d": "text",
        "e": {"step": [10, 20], "value": [0.3, 0.2]},
    }  # fmt: skip
    # hi-ml's AzureMLLogger logs its hyperparameters as a table of text (name, value): text is
    # kept as text, and a table of other columns than step/value is one series per column.
    logged["hyperparams"] = {"name": ["lr", "note"], "value": ["0.1", "first try"]}
    found = metrics_from_run(logged, when)
    assert [(m.name, m.value, m.step) for m in found] == [
        ("a", 1.0, None), ("b", 2.0, 0), ("b", 3.0, 1), ("c", 4.0, 0), ("d", "text", None),
        ("e", 0.3, 10), ("e", 0.2, 20), ("hyperparams/name", "lr", 0),
        ("hyperparams/name", "note", 1), ("hyperparams/value", "0.1", 0),
        ("hyperparams/value", "first try", 1),
    ]  # fmt: skip
    assert {m.time for m in found} == {when}


def test_sweeps_become_hyperdrive_configs(
    aml: AzureMLV1Backend, aml_service: FakeAzureMLService, spec: JobSpec
) -> None:
    from azureml.train.hyperdrive import HyperDriveConfig

    from himl_tasks.sweeps import BanditPolicy, LogUniform, SweepSpec

    grid = SweepSpec(
        parameters={"lr": Choice(0.1, 0.01), "--batch": Choice(32, 64, 128)},
        sampling="grid", primary_metric="val_loss",
    )  # fmt: skip
    ref = aml.submit_sweep(spec, grid)
    config = aml_service.submitted[-1][1]
    assert isinstance(config, HyperDriveConfig)
    recovery_file = spec.recovery_file_folder / "most_recent_run.txt"
    assert recovery_file.read_text().strip() == ref.recovery_id  # as for any submission
    assert config._max_total_runs == 6
    assert config._primary_metric_config == {"name": "val_loss", "goal": "minimize"}
    space = config._generator_config["parameter_space"]
    assert space == {"--lr": ["choice", [[0.1, 0.01]]], "--batch": ["choice", [[32, 64, 128]]]}
    assert config._run_config.script == "train.py"

    random = SweepSpec(
        parameters={"lr": LogUniform(1e-4, 1e-1)}, sampling="random", goal="maximize",
        primary_metric="accuracy", max_total_runs=12, max_concurrent_runs=3,
        early_termination=BanditPolicy(slack_factor=0.1, evaluation_interval=2),
    )  # fmt: skip
    aml.submit_sweep(spec, random)
    config = aml_service.submitted[-1][1]
    assert config._generator_config["name"] == "RANDOM"
    kind, bounds = config._generator_config["parameter_space"]["--lr"]
    assert kind == "loguniform"
    assert bounds == pytest.approx([-9.2103, -2.3026], abs=1e-4)
    assert (config._max_total_runs, config._max_concurrent_runs) == (12, 3)
    assert config._policy_config["name"] == "Bandit"
    assert config._policy_config["properties"]["slack_factor"] == 0.1

    folds = cross_validation(5, primary_metric="val/loss")
    aml.submit_sweep(spec, folds)
    config = aml_service.submitted[-1][1]
    assert config._generator_config["parameter_space"] == {
        "--crossval_index": ["choice", [[0, 1, 2, 3, 4]]]
    }
    assert (config._max_total_runs, config._max_concurrent_runs) == (5, 5)


def test_bad_sweeps_are_refused() -> None:
    from himl_tasks.sweeps import SweepSpec, Uniform

    with pytest.raises(InvalidInputError, match="grid sampling takes Choice"):
        SweepSpec(parameters={"lr": Uniform(0, 1)}, sampling="grid", primary_metric="m")
    with pytest.raises(InvalidInputError, match="needs max_total_runs"):
        SweepSpec(parameters={"lr": Uniform(0, 1)}, sampling="random", primary_metric="m")
    with pytest.raises(InvalidInputError, match="2 or more folds"):
        cross_validation(1, primary_metric="m")
