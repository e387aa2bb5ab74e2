"""The AzureML stand-in executes submitted jobs: a hi-ml user's script really runs "on AzureML".

Each job is a real subprocess of this interpreter in a copy of the snapshot (the stand-in's
compute: tests/backends/azureml_execution.py), its storage Azurite.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from himl_tasks.backends.azureml_v1 import AzureMLV1Backend
from himl_tasks.datasets import DatasetConfig
from himl_tasks.runs import FailureKind, RunStatus
from himl_tasks.sweeps import Choice, SweepSpec
from tests.backends.azureml_service import (
    ARTIFACT_DATASTORE,
    DEFAULT_DATASTORE,
    PREEMPTION_ERROR,
    FakeAzureMLService,
    Outcome,
)
from tests.backends.conftest import azureml_job
from tests.backends.job_process import Preemption

FAST = 0.1  # seconds between looks at a run (more often only takes CPU from the job)
DEADLINE = 60.0


def test_a_hi_ml_script_runs_with_its_datasets_metrics_and_files(
    executing_aml: AzureMLV1Backend,
    aml_service: FakeAzureMLService,
    project: Path,
    tmp_path: Path,
) -> None:
    store = aml_service.store(DEFAULT_DATASTORE)
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "numbers.txt").write_text("1 2 3\n")
    store.upload_folder(tmp_path / "raw", "himl_in")
    store.upload_folder(tmp_path / "raw", "himl_mounted")
    (tmp_path / "seed").mkdir()
    (tmp_path / "seed" / "old.txt").write_text("version one\n")
    store.upload_folder(tmp_path / "seed", "himl_out/seed")
    assert executing_aml.register_dataset("himl_out", "", "himl_out/seed").version == 1
    spec = azureml_job(
        project,
        """
        import os, sys
        from pathlib import Path
        from azureml.core import Run
        from himl_tasks.runtime import get_run_info

        info = get_run_info()
        run = Run.get_context()
        assert info.is_running_in_azure_ml and run.id == os.environ["AZUREML_RUN_ID"]
        numbers = (info.input_datasets[0] / "numbers.txt").read_text().split()
        mounted = info.input_datasets[1]
        assert mounted.parts[-2:] == ("mnt", "data"), mounted  # /mnt/data, in the node's root
        assert (mounted / "numbers.txt").read_text().split() == numbers
        total = sum(int(n) for n in numbers)
        (info.output_datasets[0] / "total.txt").write_text(str(total))
        Path("outputs/argv.txt").write_text(" ".join(sys.argv[1:]) + " " + os.environ["GREETING"])
        run.log("total", total)
        for loss in (0.5, 0.25):
            run.log("loss", loss)
        run.log_list("accuracy", [0.1, 0.9])
        run.log_row("curve", step=1, value=0.3)
        run.log_row("curve", step=2, value=0.2)
        run.tag("seen", "yes")
        Path("chart.png").write_bytes(b"not really a png")
        run.log_image("chart", path="chart.png")
        print("experiment", run.experiment.name, run.experiment.workspace.name)
        """,
        args=("--epochs", "2"),
        environment_variables={"GREETING": "hello"},
        input_datasets=(
            DatasetConfig("himl_in"),
            DatasetConfig("himl_mounted", use_mounting=True, target_folder=Path("/mnt/data")),
        ),
        output_datasets=(DatasetConfig("himl_out"),),
        experiment="exec",
    )
    ref = executing_aml.submit(spec)
    lines: list[str] = []
    state = executing_aml.watch(
        ref, on_line=lines.append, timeout_seconds=DEADLINE, poll_seconds=FAST
    )

    assert state.status is RunStatus.COMPLETED, lines
    assert "experiment exec ws-himl" in lines
    executing_aml.download_files(ref, "outputs/", tmp_path / "got")
    assert (tmp_path / "got" / "outputs" / "argv.txt").read_text() == "--epochs 2 hello"
    logged = executing_aml.get_metrics(ref)
    metrics = {(m.name, m.step): m.value for m in logged if m.name != "chart"}
    assert metrics == {
        ("total", None): 6.0, ("loss", 0): 0.5, ("loss", 1): 0.25, ("accuracy", 0): 0.1,
        ("accuracy", 1): 0.9, ("curve", 1): 0.3, ("curve", 2): 0.2,
    }  # fmt: skip
    run = aml_service.run(ref.run_id)
    assert run.get_tags()["seen"] == "yes"
    # An image: an artifact-backed metric (its location) and a run file under its path.
    image = f"ExperimentRun/dcid.{ref.run_id}/chart.png"
    assert run.get_metrics()["chart"] == f"aml://artifactId/{image}"
    assert aml_service.store(ARTIFACT_DATASTORE).exists(image)
    # The output dataset: in <name>/<run id>/, registered as the dataset's next version.
    assert [f.name for f in store.list(f"himl_out/{ref.run_id}/")] == [
        f"himl_out/{ref.run_id}/total.txt"
    ]
    (output,) = executing_aml.run_outputs(ref)
    assert (output.name, output.version, output.path) == ("himl_out", 2, f"himl_out/{ref.run_id}")


def test_the_driver_log_streams_while_the_job_runs(
    executing_aml: AzureMLV1Backend, project: Path, tmp_path: Path
) -> None:
    # The job waits for a file that only the watcher's on_line creates, once it has seen the
    # job's first line: the job can only finish if its log streamed while it ran.
    go = tmp_path / "go"
    spec = azureml_job(
        project,
        """
        import sys, time
        from pathlib import Path
        print("waiting for the watcher")
        deadline = time.monotonic() + 20
        while not Path(sys.argv[1]).exists():
            if time.monotonic() > deadline:
                sys.exit("nobody saw my first line")
            time.sleep(0.02)
        print("done")
        """,
        args=(str(go),),
    )
    ref = executing_aml.submit(spec)
    seen: list[tuple[str, RunStatus]] = []

    def on_line(line: str) -> None:
        seen.append((line, executing_aml.get_state(ref).status))
        if line == "waiting for the watcher":
            go.touch()

    state = executing_aml.watch(ref, on_line=on_line, timeout_seconds=DEADLINE, poll_seconds=FAST)
    assert state.status is RunStatus.COMPLETED
    assert seen[0] == ("waiting for the watcher", RunStatus.RUNNING)
    assert [line for line, _ in seen] == ["waiting for the watcher", "done"]


def test_a_failing_script_fails_the_run_with_its_exception(
    executing_aml: AzureMLV1Backend, project: Path
) -> None:
    spec = azureml_job(project, "print('starting')\nraise KeyError('no such column: age')\n")
    ref = executing_aml.submit(spec)
    lines: list[str] = []
    state = executing_aml.watch(
        ref, on_line=lines.append, timeout_seconds=DEADLINE, poll_seconds=FAST
    )
    assert state.status is RunStatus.FAILED
    assert "KeyError: 'no such column: age'" in (state.error or "")
    assert "exited with status code 1" in (state.error or "")
    assert lines[0] == "starting" and lines[-1] == "KeyError: 'no such column: age'"


def test_cancel_kills_the_job_process(
    executing_aml: AzureMLV1Backend,
    aml_service: FakeAzureMLService,
    project: Path,
    tmp_path: Path,
) -> None:
    marker = tmp_path / "still-alive"
    spec = azureml_job(
        project,
        """
        import sys, time
        from pathlib import Path
        print("running", flush=True)
        for _ in range(400):
            Path(sys.argv[1]).write_text(str(time.time()))
            time.sleep(0.05)
        """,
        args=(str(marker),),
    )
    ref = executing_aml.submit(spec)
    deadline = time.monotonic() + 20
    while executing_aml.get_state(ref).status is not RunStatus.RUNNING or not marker.exists():
        assert time.monotonic() < deadline, "the job never ran"
        time.sleep(0.05)
    executing_aml.cancel(ref)
    assert executing_aml.get_state(ref).status is RunStatus.CANCELED
    (process,) = [j.process for j in aml_service.jobs]
    assert process is not None and process.poll() is not None
    stamp = marker.read_text()
    time.sleep(0.2)
    assert marker.read_text() == stamp  # nothing writes any more


TRAINS = """
import sys, time
from pathlib import Path
from himl_tasks.runtime import find_latest_recovery_checkpoint, log_metrics
folder = Path("outputs/checkpoints")
latest = find_latest_recovery_checkpoint(folder)
start = 0 if latest is None else int(latest.read_text()) + 1
print(f"starting at epoch {start}", flush=True)
for epoch in range(start, int(sys.argv[1])):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"recovery_epoch={epoch}.ckpt").write_text(str(epoch))
    log_metrics({"epoch": epoch}, step=epoch)
    time.sleep(0.3)
"""


def test_a_preempted_job_fails_with_azuremls_error_and_a_resubmitted_one_resumes(
    executing_aml: AzureMLV1Backend, aml_service: FakeAzureMLService, project: Path
) -> None:
    """The stand-in preempts a running job as low-priority compute does; the new run of a
    resubmission fetches the lost run's recovery checkpoint from inside its job."""
    aml_service.preemptions.append(Preemption("job.py", after_metric=("epoch", 2)))
    spec = azureml_job(project, TRAINS, args=("6",))

    lost = executing_aml.submit(spec)
    state = executing_aml.watch(lost, timeout_seconds=DEADLINE, poll_seconds=FAST)

    assert state.status is RunStatus.FAILED and state.failure_kind is FailureKind.PREEMPTED
    assert aml_service.run(lost.run_id).get_details()["error"] == PREEMPTION_ERROR
    (job,) = aml_service.jobs
    assert job.process is not None and job.process.poll() is not None
    kept = executing_aml.list_files(lost, "outputs/checkpoints/")
    assert "outputs/checkpoints/recovery_epoch=1.ckpt" in kept

    resumed = executing_aml.submit(spec.resuming_from(lost.recovery_id))
    lines: list[str] = []
    state = executing_aml.watch(
        resumed, on_line=lines.append, timeout_seconds=DEADLINE, poll_seconds=FAST
    )

    assert state.status is RunStatus.COMPLETED  # the rule fires once
    assert lines[0] in ("starting at epoch 2", "starting at epoch 3"), lines


def test_a_job_past_its_max_run_duration_is_stopped(
    executing_aml: AzureMLV1Backend, aml_service: FakeAzureMLService, project: Path
) -> None:
    spec = azureml_job(
        project, "import time\nprint('sleeping')\ntime.sleep(60)\n", max_run_duration=1
    )
    ref = executing_aml.submit(spec)
    started = time.monotonic()
    state = executing_aml.watch(ref, timeout_seconds=DEADLINE, poll_seconds=FAST)
    assert time.monotonic() - started < 15
    assert state.status is RunStatus.CANCELED
    (process,) = [j.process for j in aml_service.jobs]
    assert process is not None and process.poll() is not None


def test_a_hyperdrive_sweep_runs_each_trial_with_its_arguments(
    executing_aml: AzureMLV1Backend, project: Path, tmp_path: Path
) -> None:
    spec = azureml_job(
        project,
        """
        import sys
        from pathlib import Path
        Path("outputs/args.txt").write_text(" ".join(sys.argv[1:]))
        """,
        args=("--fixed", "1"),
    )
    sweep = SweepSpec(
        parameters={"lr": Choice(0.1, 0.01), "batch": Choice(8, 16)},
        sampling="grid", primary_metric="loss", max_total_runs=3, max_concurrent_runs=2,
    )  # fmt: skip
    ref = executing_aml.submit_sweep(spec, sweep)
    state = executing_aml.watch(ref, timeout_seconds=DEADLINE, poll_seconds=FAST)
    assert state.status is RunStatus.COMPLETED
    trials = executing_aml.child_runs(ref)
    found = []
    for i, trial in enumerate(trials):
        assert executing_aml.get_state(trial).status is RunStatus.COMPLETED
        executing_aml.download_files(trial, "outputs/args.txt", tmp_path / str(i))
        found.append((tmp_path / str(i) / "outputs" / "args.txt").read_text())
    assert found == [
        "--fixed 1 --lr 0.1 --batch 8",
        "--fixed 1 --lr 0.1 --batch 16",
        "--fixed 1 --lr 0.01 --batch 8",
    ]


def test_scripted_runs_do_not_execute(
    aml: AzureMLV1Backend, aml_service: FakeAzureMLService, project: Path
) -> None:
    spec = azureml_job(project, "raise SystemExit('must not run')\n")
    ref = aml.submit(spec)
    assert aml.watch(ref, timeout_seconds=DEADLINE, poll_seconds=FAST).status is RunStatus.COMPLETED
    assert aml_service.jobs == []


@pytest.mark.parametrize("kind", ["grid", "random"])
def test_sampling_reads_azureml_s_parameter_space(kind: str) -> None:
    from azureml.core import ScriptRunConfig
    from azureml.train.hyperdrive import (
        GridParameterSampling,
        HyperDriveConfig,
        PrimaryMetricGoal,
        RandomParameterSampling,
        choice,
        uniform,
    )

    from tests.backends.azureml_execution import sampled_arguments

    if kind == "grid":
        sampling = GridParameterSampling({"--a": choice(1, 2), "--b": choice("x", "y")})
    else:
        sampling = RandomParameterSampling(
            {"--a": choice(1, 2), "--lr": uniform(0.0, 1.0)}, properties={"rngseed": 7}
        )
    config = HyperDriveConfig(
        run_config=ScriptRunConfig(source_directory="."),
        hyperparameter_sampling=sampling,
        primary_metric_name="loss",
        primary_metric_goal=PrimaryMetricGoal.MINIMIZE,
        max_total_runs=3,
    )
    trials = sampled_arguments(config)
    assert len(trials) == 3
    if kind == "grid":
        assert trials == [
            ["--a", "1", "--b", "x"], ["--a", "1", "--b", "y"], ["--a", "2", "--b", "x"],
        ]  # fmt: skip
    else:
        assert trials == sampled_arguments(config)  # seeded: the same draws each time
        assert all(t[0] == "--a" and t[1] in ("1", "2") and 0 <= float(t[3]) <= 1 for t in trials)


def test_a_table_of_one_row_is_read_back(
    aml: AzureMLV1Backend, aml_service: FakeAzureMLService, project: Path
) -> None:
    # AzureML returns a table of one row as {column: value} (get_cells_from_metric_v2_dto).
    aml_service.next_outcome = Outcome(metrics={"final": {"step": 3, "value": 0.25}})
    ref = aml.submit(azureml_job(project, "print('hi')\n"))
    aml.watch(ref, timeout_seconds=DEADLINE, poll_seconds=FAST)
    assert [(m.name, m.value, m.step) for m in aml.get_metrics(ref)] == [("final", 0.25, 3)]


def test_the_job_side_run_has_azureml_s_signatures() -> None:
    import inspect

    from azureml.core import Run

    from tests.backends.azureml_job_launcher import JobRun

    members = (
        "log", "log_list", "log_row", "log_table", "log_image", "flush", "complete",
        "get_status", "tag", "set_tags", "get_tags", "upload_file",
    )  # fmt: skip

    def shape(function: object) -> list[tuple[str, object, object]]:
        # Names, kinds and defaults: how a caller may call it (annotations aside).
        parameters = inspect.signature(function).parameters.values()  # type: ignore[arg-type]
        return [(p.name, p.kind, p.default) for p in parameters]

    for name in members:
        assert shape(getattr(JobRun, name)) == shape(getattr(Run, name)), name


def test_the_job_side_run_refuses_what_azureml_s_run_refuses(tmp_path: Path) -> None:
    # A script that catches azureml's exception on AzureML must catch the stand-in's: the
    # same refusals, raised as azureml-core's own code raises them (it raised ValueError).
    from azureml._run_impl.run_history_facade import RunHistoryFacade
    from azureml.core import Run
    from azureml.exceptions import AzureMLException

    from tests.backends.azureml_job_launcher import JobRun

    run = JobRun(
        {
            "run_id": "r1",
            "experiment": "e",
            "workspace": {"name": "w", "subscription_id": "s", "resource_group": "g"},
            "input_datasets": {},
            "output_datasets": {},
            "record_file": str(tmp_path / "record.jsonl"),
            "staged_files": str(tmp_path / "staged"),
        }
    )
    refusals = [
        # Run.log checks its value before it reaches the service (self._client).
        (lambda: Run.log(run, "loss", [1, 2]), lambda: run.log("loss", [1, 2])),
        (lambda: Run.log(run, "loss", range(2)), lambda: run.log("loss", range(2))),
        (lambda: Run.log(run, "loss", (x for x in [1])), lambda: run.log("loss", (x for x in [1]))),
        # The facade checks path and plot before it looks at itself.
        (lambda: RunHistoryFacade.log_image(None, "plot"), lambda: run.log_image("plot")),
    ]
    for azureml_call, stand_in_call in refusals:
        with pytest.raises(AzureMLException) as azureml_error:
            azureml_call()
        with pytest.raises(AzureMLException) as stand_in_error:
            stand_in_call()
        assert type(stand_in_error.value) is type(azureml_error.value)
    assert not (tmp_path / "record.jsonl").exists()  # nothing refused was recorded
