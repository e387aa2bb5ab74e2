"""AzureML v1 pipelines beyond the contract: the Pipeline sent, refusals, publishing, schedules.

The contract (test_pipeline_contract.py) checks what every backend promises; these look at
what the v1 backend hands AzureML (the stand-in keeps the `PythonScriptStep`s it received)
and at what only v1 has: cron translated to `ScheduleRecurrence`, schedules disabled on
removal, one submission found again after its answer was lost.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from himl_tasks.backends.azureml_v1 import AzureMLV1Backend
from himl_tasks.backends.azureml_v1.recurrence import translate_cron
from himl_tasks.datasets import DatasetConfig
from himl_tasks.errors import InvalidInputError, PipelineNotFoundError
from himl_tasks.job_spec import JobSpec
from himl_tasks.job_variables import AZUREML_V1_IN_JOB, IN_JOB
from himl_tasks.pipeline_runs import PipelineSchedule
from himl_tasks.pipelines import PipelineSpec, PipelineStep
from himl_tasks.testing.backend_contract import DEADLINE_SECONDS
from tests.backends.azureml_service import FakeAzureMLService
from tests.backends.conftest import azureml_job


def make_raw(aml: AzureMLV1Backend, service: FakeAzureMLService) -> None:
    """Version 1 of dataset `raw`: a folder uploaded to the default datastore, registered."""
    folder = service.compute_root / "raw"
    folder.mkdir(parents=True)
    (folder / "part.txt").write_text("raw")
    aml.datastore().upload_folder(folder, "raw")
    aml.resolve_dataset(DatasetConfig("raw"))


def chain(project: Path, *, train_args: tuple[str, ...] = ()) -> PipelineSpec:
    prep = azureml_job(
        project / "prep",
        "print('prep')\n",
        name="prep.py",
        args=["--size", "3"],
        input_datasets=[DatasetConfig("raw", use_mounting=True)],
        output_datasets=["features"],
        environment_variables={"STAGE": "prep"},
    )
    train = azureml_job(
        project / "train",
        "print('train')\n",
        name="train.py",
        args=list(train_args),
        input_datasets=["features"],
    )
    return PipelineSpec(
        "chain",
        [PipelineStep("prep", prep), PipelineStep("train", train, allow_reuse=False)],
        existing_datasets=["raw"],
    )


def settle(aml: AzureMLV1Backend, ref: Any) -> Any:
    return aml.wait(ref, timeout=DEADLINE_SECONDS, poll=0)


def test_the_pipeline_sent_is_python_script_steps_made_as_single_jobs_are(
    aml: AzureMLV1Backend, aml_service: FakeAzureMLService, project: Path
) -> None:
    from azureml.data import OutputFileDatasetConfig
    from azureml.pipeline.steps import PythonScriptStep

    make_raw(aml, aml_service)
    ref = aml.submit_pipeline(chain(project), submission_id="chain-1")

    run: Any = aml_service.runs[ref.run_id]
    prep, train = (node.step for node in run.nodes)
    assert all(isinstance(step, PythonScriptStep) for step in (prep, train))
    assert (prep.name, prep._script_name, prep._arguments) == ("prep", "prep.py", ["--size", "3"])
    assert prep._source_directory == str(project / "prep")
    assert prep._compute_target == "cpu-cluster"
    variables = prep._runconfig.environment_variables
    assert variables["STAGE"] == "prep" and variables[IN_JOB] == AZUREML_V1_IN_JOB
    assert (prep._allow_reuse, train._allow_reuse) == (True, False)
    (raw,) = prep._inputs
    assert (raw.name, raw.mode) == ("INPUT_0", "mount")
    (features,) = prep._outputs
    assert isinstance(features, OutputFileDatasetConfig)
    assert features._registration.name == "features"
    assert features.destination[1] == "features/{run-id}/"
    (handed_on,) = train._inputs
    assert handed_on.dataset is features and handed_on.mode == "download"
    assert run.description == "chain (himl submission chain-1)"
    assert run.tags["himl_submission_id"] == "chain-1"


def test_after_becomes_run_after(
    aml: AzureMLV1Backend, aml_service: FakeAzureMLService, project: Path
) -> None:
    first = azureml_job(project / "a", "print('a')\n", name="a.py")
    second = azureml_job(project / "b", "print('b')\n", name="b.py")
    steps = [PipelineStep("a", first), PipelineStep("b", second, ["a"])]
    pipeline = PipelineSpec("ordered", steps, display_name="a, then b")

    ref = aml.submit_pipeline(pipeline)

    pipeline_run: Any = aml_service.runs[ref.run_id]
    a, b = (node.step for node in pipeline_run.nodes)
    assert b.run_after_steps == [a] and a.run_after_steps == []
    assert pipeline_run.display_name == "a, then b"
    assert settle(aml, ref).succeeded


def test_a_module_step_is_refused_before_anything_is_sent(
    aml: AzureMLV1Backend, aml_service: FakeAzureMLService, project: Path
) -> None:
    make_raw(aml, aml_service)
    module = JobSpec(module="pkg.prep", snapshot_root=project, compute="cpu-cluster")

    with pytest.raises(InvalidInputError, match=r"\(PythonScriptStep\) runs a script"):
        aml.submit_pipeline(PipelineSpec("modules", [PipelineStep("prep", module)]))

    assert aml_service.runs == {} and aml_service.submit_requests == 0


def test_steps_sharing_a_folder_with_different_ignore_rules_are_refused(
    aml: AzureMLV1Backend, aml_service: FakeAzureMLService, project: Path
) -> None:
    first = azureml_job(project, "print('a')\n", name="a.py", ignored_folders=["data"])
    second = azureml_job(project, "print('b')\n", name="b.py")
    pipeline = PipelineSpec("shared", [PipelineStep("a", first), PipelineStep("b", second)])

    with pytest.raises(InvalidInputError, match="share the snapshot folder"):
        aml.submit_pipeline(pipeline)

    assert aml_service.runs == {}


def test_a_lost_answer_finds_the_pipeline_run_the_service_made(
    aml: AzureMLV1Backend, aml_service: FakeAzureMLService, project: Path
) -> None:
    make_raw(aml, aml_service)
    pipeline = chain(project)
    aml_service.pipelines.crash_after_create = ConnectionResetError("connection reset")

    ref = aml.submit_pipeline(pipeline, submission_id="lost-answer")
    again = aml.submit_pipeline(pipeline, submission_id="lost-answer")

    assert ref == again == aml.find_submission("lost-answer")
    assert len(aml_service.pipeline_runs(ref.experiment)) == 1
    assert aml.submitted_pipeline(ref) == pipeline
    assert settle(aml, ref).succeeded


def test_a_single_jobs_inputs_are_read_from_its_details(
    aml: AzureMLV1Backend, aml_service: FakeAzureMLService, project: Path
) -> None:
    make_raw(aml, aml_service)
    aml.resolve_dataset(DatasetConfig("raw"))
    job = azureml_job(project, "print('job')\n", input_datasets=[DatasetConfig("raw", version=1)])

    ref = aml.submit(job)

    assert [(d.name, d.version) for d in aml.run_inputs(ref)] == [("raw", 1)]


def test_a_pipeline_is_published_once_per_content_and_submitted_by_name(
    aml: AzureMLV1Backend, aml_service: FakeAzureMLService, project: Path
) -> None:
    make_raw(aml, aml_service)
    first = aml.publish_pipeline(chain(project), description="nightly")
    unchanged = aml.publish_pipeline(chain(project), description="nightly")
    changed = aml.publish_pipeline(chain(project, train_args=("--epochs", "2")))

    assert (first.version, unchanged, changed.version) == (1, first, 2)
    assert len(aml_service.pipelines.published) == 2  # the unchanged one was not sent
    assert first.description == "nightly" and first.endpoint.startswith("https://")
    assert aml.published_pipelines("chain") == [first, changed]
    assert aml.published_pipelines() == [first, changed]
    (endpoint,) = aml_service.pipelines.endpoints
    assert endpoint.name == "chain" and endpoint.default_version == "1"

    ref = aml.submit_published_pipeline("chain", version=1, submission_id="published-1")
    assert aml.submit_published_pipeline("chain", version=1, submission_id="published-1") == ref
    assert settle(aml, ref).succeeded
    assert [s.step for s in aml.pipeline_steps(ref)] == ["prep", "train"]
    with pytest.raises(PipelineNotFoundError, match="version 7"):
        aml.submit_published_pipeline("chain", version=7)
    with pytest.raises(PipelineNotFoundError):
        aml.submit_published_pipeline("nothing")


@pytest.mark.parametrize("version", [True, 1.0, "1", 0, -1])
def test_a_version_that_is_no_version_number_is_refused_before_anything_is_sent(
    aml: AzureMLV1Backend, aml_service: FakeAzureMLService, project: Path, version: object
) -> None:
    make_raw(aml, aml_service)
    aml.publish_pipeline(chain(project))
    submitted = len(aml_service.runs)

    with pytest.raises(InvalidInputError, match="version must be"):  # True is no version 1
        aml.submit_published_pipeline("chain", version=version)  # type: ignore[arg-type]
    assert len(aml_service.runs) == submitted


def test_a_schedule_is_made_updated_and_removed_by_name(
    aml: AzureMLV1Backend, aml_service: FakeAzureMLService, project: Path
) -> None:
    make_raw(aml, aml_service)
    with pytest.raises(PipelineNotFoundError):
        aml.schedule_pipeline(PipelineSchedule("nightly", "chain", "0 2 * * *"))
    aml.publish_pipeline(chain(project))

    made = aml.schedule_pipeline(PipelineSchedule("nightly", "chain", "0 2 * * 1-5"))
    updated = aml.schedule_pipeline(PipelineSchedule("nightly", "chain", "30 */6 * * *"))

    (schedule,) = aml_service.pipelines.schedules
    assert made.id == updated.id == schedule.id
    assert (schedule.recurrence.frequency, schedule.recurrence.interval) == ("Hour", 6)
    assert aml.pipeline_schedules() == [updated]
    aml.remove_pipeline_schedule("nightly")
    aml.remove_pipeline_schedule("never-made")
    assert schedule.status == "Disabled" and aml.pipeline_schedules() == []


def test_a_cron_v1_cannot_express_is_refused_before_anything_changes(
    aml: AzureMLV1Backend, aml_service: FakeAzureMLService, project: Path
) -> None:
    make_raw(aml, aml_service)
    aml.publish_pipeline(chain(project))

    with pytest.raises(InvalidInputError, match="every n minutes") as refused:
        aml.schedule_pipeline(PipelineSchedule("monthly", "chain", "0 0 1 * *"))

    assert "day of month" in str(refused.value)
    assert aml_service.pipelines.schedules == []


@pytest.mark.parametrize(
    ("cron", "expected"),
    [
        ("*/15 * * * *", {"frequency": "Minute", "interval": 15}),
        ("* * * * *", {"frequency": "Minute", "interval": 1}),
        ("30 * * * *", {"frequency": "Hour", "interval": 1, "minute": 30}),
        ("5 */6 * * *", {"frequency": "Hour", "interval": 6, "minute": 5}),
        ("0 2,14 * * *", {"frequency": "Day", "hours": [2, 14], "minutes": [0]}),
        ("*/20 9-10 * * *", {"frequency": "Day", "hours": [9, 10], "minutes": [0, 20, 40]}),
        (
            "0 2 * * 1-5",
            {
                "frequency": "Week",
                "week_days": ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"],
            },
        ),
        ("0 2 * * SUN,7", {"frequency": "Week", "week_days": ["Sunday"]}),
    ],
)
def test_cron_becomes_the_recurrence_that_fires_at_the_same_times(
    cron: str, expected: dict[str, Any]
) -> None:
    found = translate_cron(PipelineSchedule("s", "p", cron))

    minute = expected.pop("minute", 0)
    assert found["start_time"].minute == minute
    assert {key: found[key] for key in expected} == expected


@pytest.mark.parametrize(
    ("cron", "timezone", "problem"),
    [
        ("0 0 1 * *", "UTC", "day of month and month"),
        ("0 0 * 6 *", "UTC", "day of month and month"),
        ("0 2 * * 1#2", "UTC", "day of week"),
    ],
)
def test_cron_v1_cannot_express_is_refused_naming_what_it_can(
    cron: str, timezone: str, problem: str
) -> None:
    with pytest.raises(InvalidInputError, match=problem) as refused:
        translate_cron(PipelineSchedule("s", "p", cron, timezone=timezone))

    assert "every week on days" in str(refused.value)


def test_an_executed_pipeline_hands_the_file_prep_wrote_to_train(
    executing_aml: AzureMLV1Backend, aml_service: FakeAzureMLService, project: Path
) -> None:
    aml = executing_aml
    make_raw(aml, aml_service)
    prep = azureml_job(project / "prep", """\
        from himl_tasks.runtime import get_run_info
        info = get_run_info()
        text = (info.input_datasets[0] / "part.txt").read_text()
        (info.output_datasets[0] / "part.txt").write_text(text + " prepared")
    """, name="prep.py", input_datasets=["raw"], output_datasets=["features"])  # fmt: skip
    train = azureml_job(project / "train", """\
        from pathlib import Path
        from himl_tasks.runtime import get_run_info
        text = (get_run_info().input_datasets[0] / "part.txt").read_text()
        Path("outputs").mkdir(exist_ok=True)
        Path("outputs/seen.txt").write_text(text)
    """, name="train.py", input_datasets=["features"])  # fmt: skip
    pipeline = PipelineSpec(
        "executed", [PipelineStep("prep", prep), PipelineStep("train", train)],
        existing_datasets=["raw"],
    )  # fmt: skip

    ref = aml.submit_pipeline(pipeline)

    assert aml.wait(ref, timeout=DEADLINE_SECONDS).succeeded
    prep_step, train_step = aml.pipeline_steps(ref)
    assert prep_step.run is not None and train_step.run is not None
    (features,) = aml.run_outputs(prep_step.run)
    assert aml.run_inputs(train_step.run) == [features]
    aml.download_files(train_step.run, "outputs/", project / "downloaded")
    assert (project / "downloaded/outputs/seen.txt").read_text() == "raw prepared"


def test_a_refused_submission_keeps_nothing_and_is_not_found_again(
    aml: AzureMLV1Backend, aml_service: FakeAzureMLService, project: Path
) -> None:
    make_raw(aml, aml_service)
    aml_service.fail_next_submit = ConnectionRefusedError("no route to the service")

    with pytest.raises(ConnectionRefusedError):
        aml.submit_pipeline(chain(project), submission_id="refused")

    assert aml_service.runs == {} and aml.find_submission("refused") is None
    ref = aml.submit_pipeline(chain(project), submission_id="refused")  # tried again: one run
    assert aml.find_submission("refused") == ref


def test_submission_ids_find_pipeline_runs_in_their_experiment_only(
    aml: AzureMLV1Backend, aml_service: FakeAzureMLService, project: Path, monkeypatch: Any
) -> None:
    make_raw(aml, aml_service)
    pipeline_run = aml.submit_pipeline(chain(project), submission_id="a-pipeline")
    job = aml.submit(azureml_job(project, "print('job')\n"), submission_id="a-job")
    listed: list[str] = []
    original = aml_service.pipeline_runs

    def listing(experiment: str) -> list[Any]:
        listed.append(experiment)
        return original(experiment)

    monkeypatch.setattr(aml_service, "pipeline_runs", listing)

    assert aml.find_submission("a-job") == job
    assert aml.find_submission("nothing") is None
    assert aml.find_submission("a-pipeline") == pipeline_run

    # Only the pipeline's lookup listed pipeline runs, and only in the pipeline's experiment.
    assert listed == [pipeline_run.experiment]


def test_a_run_that_is_not_a_pipeline_run_has_no_pipeline(
    aml: AzureMLV1Backend, project: Path
) -> None:
    ref = aml.submit(azureml_job(project, "print('job')\n"))

    with pytest.raises(InvalidInputError, match="not a pipeline run"):
        aml.pipeline_steps(ref)
    with pytest.raises(InvalidInputError, match="not a pipeline run"):
        aml.submitted_pipeline(ref)


def test_an_inactive_schedule_is_made_disabled(
    aml: AzureMLV1Backend, aml_service: FakeAzureMLService, project: Path
) -> None:
    make_raw(aml, aml_service)
    aml.publish_pipeline(chain(project))

    made = aml.schedule_pipeline(PipelineSchedule("paused", "chain", "0 2 * * *", active=False))

    (schedule,) = aml_service.pipelines.schedules
    assert schedule.status == "Disabled" and aml.pipeline_schedules() == [made]
    assert not made.active and made.id == schedule.id


def test_a_new_version_of_an_existing_input_makes_a_new_published_version(
    aml: AzureMLV1Backend, aml_service: FakeAzureMLService, project: Path
) -> None:
    make_raw(aml, aml_service)
    first = aml.publish_pipeline(chain(project))
    raw = aml_service.dataset("raw", 1)
    aml_service.register_dataset(raw.dataset, "raw", {"himl_path": "raw"})  # raw version 2

    again = aml.publish_pipeline(chain(project))

    assert (first.version, again.version) == (1, 2)
    (prep, _) = aml_service.pipelines.published[-1].nodes
    (read,) = prep.step._inputs
    assert aml_service.registered_for(read.dataset) is aml_service.dataset("raw", 2)


def test_a_schedules_iana_time_zone_becomes_v1s_windows_time_zone() -> None:
    from azureml.pipeline.core import TimeZone

    from himl_tasks.backends.azureml_v1.recurrence import recurrence_for

    london = recurrence_for(PipelineSchedule("s", "p", "0 2 * * *", timezone="Europe/London"))
    utc = recurrence_for(PipelineSchedule("s", "p", "0 2 * * *"))

    assert london.time_zone is TimeZone.GMTStandardTime and utc.time_zone is TimeZone.UTC
    with pytest.raises(InvalidInputError, match="no time zone matching 'Antarctica/Troll'"):
        recurrence_for(PipelineSchedule("s", "p", "0 2 * * *", timezone="Antarctica/Troll"))
