"""AzureML v2 pipelines beyond the contract: the pipeline job as built offline, refusals,
`after`, published pipelines (registered components) and schedules (`JobSchedule`).

Through the v2 stand-in (tests/backends/azureml_v2_service.py and
azureml_v2_pipeline_nodes.py), which behaves like the pipeline service.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from himl_tasks.backends.azureml_v2 import AzureMLV2Backend
from himl_tasks.backends.azureml_v2.submission import job_name_for
from himl_tasks.datasets import DatasetConfig
from himl_tasks.errors import InvalidInputError, PipelineNotFoundError
from himl_tasks.job_spec import JobSpec, Priority
from himl_tasks.pipeline_runs import PipelineSchedule
from himl_tasks.pipelines import PipelineSpec, PipelineStep
from himl_tasks.testing.backend_contract import DEADLINE_SECONDS, Job
from himl_tasks.testing.pipeline_contract import PREP, TRAIN, make_raw, step_run
from himl_tasks.testing.publishing_contract import moved
from tests.backends import azureml_v2_service as v2
from tests.backends.test_backend_contract import AzureMLV2Harness, azureml_v2_harness
from tests.conftest import MLFLOW_WARNINGS, write_tree

pytestmark = MLFLOW_WARNINGS  # its executing test reads MLflow after a Prefect server


@pytest.fixture
def harness(
    aml_v2: AzureMLV2Backend, aml_v2_service: v2.FakeAzureMLV2Service, tmp_path: Path
) -> AzureMLV2Harness:
    return azureml_v2_harness(aml_v2, aml_v2_service, tmp_path)


def chain(harness: AzureMLV2Harness, name: str = "chain", **prep_changes: Any) -> PipelineSpec:
    prep = dataclasses.replace(harness.job_spec(PREP), **prep_changes)
    return PipelineSpec(
        name,
        [PipelineStep("prep", prep), PipelineStep("train", harness.job_spec(TRAIN))],
        existing_datasets=["raw"],
    )


def submitted_pipeline_job(service: v2.FakeAzureMLV2Service) -> Any:
    (job,) = [entity for entity, _ in service.submitted if entity.type == "pipeline"]
    return job


# ---- the pipeline job, built offline ------------------------------------------------------


def test_a_pipeline_is_one_pipeline_job_of_command_nodes_bound_by_their_datasets(
    harness: AzureMLV2Harness, aml_v2_service: v2.FakeAzureMLV2Service
) -> None:
    raw = make_raw(harness)
    pipeline = chain(harness, environment_variables={"SEED": "7"})

    ref = harness.aml.submit_pipeline(pipeline, submission_id="nightly-1")

    job = submitted_pipeline_job(aml_v2_service)
    assert ref.run_id == job.name == job_name_for("nightly-1")
    assert job.tags["himl_submission_id"] == "nightly-1"
    assert list(job.jobs) == ["prep", "train"]
    prep, train = job.jobs["prep"], job.jobs["train"]
    assert [prep.type, train.type] == ["command", "command"]
    assert prep.tags["himl_pipeline_step"] == "prep"
    assert prep.environment_variables["SEED"] == "7"
    assert prep.command.startswith("python job")
    assert prep.compute == "cpu-cluster"
    assert Path(str(prep.code)) == pipeline.step("prep").job.snapshot_root
    # prep reads the version of `raw` resolved at submission; it writes `features` as the
    # next version of that data asset; train reads prep's output, bound to it.
    assert prep.inputs["INPUT_0"]._data.path == f"azureml:raw:{raw.version}"
    output = prep.outputs["OUTPUT_0"]
    assert (output.name, output.type) == ("features", "uri_folder")
    assert output.path.endswith("/paths/features/${{name}}/")
    assert str(train.inputs["INPUT_0"]._data) == "${{parent.jobs.prep.outputs.OUTPUT_0}}"
    assert job.settings.continue_on_step_failure is False
    assert prep.component.is_deterministic is True


def test_a_step_that_allows_no_reuse_is_a_non_deterministic_node(
    harness: AzureMLV2Harness, aml_v2_service: v2.FakeAzureMLV2Service
) -> None:
    make_raw(harness)
    pipeline = chain(harness)
    once = PipelineSpec(
        "chain",
        [dataclasses.replace(pipeline.step("prep"), allow_reuse=False), pipeline.step("train")],
        existing_datasets=["raw"],
    )

    harness.aml.submit_pipeline(once)

    job = submitted_pipeline_job(aml_v2_service)
    assert job.jobs["prep"].component.is_deterministic is False
    assert job.jobs["train"].component.is_deterministic is True
    assert not job.settings.force_rerun  # other steps may still be reused


def test_serverless_and_spot_steps(
    harness: AzureMLV2Harness, aml_v2_service: v2.FakeAzureMLV2Service
) -> None:
    make_raw(harness)
    pipeline = chain(harness, compute="serverless", priority=Priority.LOW_PRIORITY)

    harness.aml.submit_pipeline(pipeline)

    job = submitted_pipeline_job(aml_v2_service)
    assert job.settings.default_compute == "serverless"
    assert job.jobs["prep"].compute is None  # the pipeline's default: serverless
    assert job.jobs["prep"].queue_settings.job_tier.lower() == "spot"
    assert job.jobs["train"].compute == "cpu-cluster"


def test_after_is_a_placeholder_output_bound_to_an_input(
    harness: AzureMLV2Harness, aml_v2_service: v2.FakeAzureMLV2Service
) -> None:
    first = PipelineStep("first", harness.job_spec(Job(log_lines=("one",))))
    second = PipelineStep("second", harness.job_spec(Job(log_lines=("two",))), after=["first"])
    aml = harness.aml

    ref = aml.submit_pipeline(PipelineSpec("ordered", [first, second]))

    job = submitted_pipeline_job(aml_v2_service)
    assert "HIML_AFTER" in job.jobs["first"].outputs
    assert getattr(job.jobs["first"].outputs["HIML_AFTER"], "name", None) is None  # no asset
    bound = str(job.jobs["second"].inputs["HIML_AFTER_first"]._data)
    assert bound == "${{parent.jobs.first.outputs.HIML_AFTER}}"
    # second starts only once first completed.
    while (steps := aml.pipeline_steps(ref))[0].run is None or aml.get_state(
        step_run(steps[0])
    ).status.value != "Completed":
        assert steps[1].run is None
        aml.get_state(ref)
    assert harness.settle(ref).succeeded
    steps = aml.pipeline_steps(ref)
    assert [s.step for s in steps] == ["first", "second"]
    assert aml.dataset_names() == []  # the placeholder is registered as nothing
    # The step runs are listed after their pipeline run, as its children.
    listed = [(r.state.ref.run_id, r.parent_run_id) for r in aml.list_runs()]
    assert listed == [(ref.run_id, None), *((step_run(s).run_id, ref.run_id) for s in steps)]


# ---- refusals, before any side effect -----------------------------------------------------


def refused_before_anything_is_sent(
    harness: AzureMLV2Harness, service: v2.FakeAzureMLV2Service, prep: Any, train: Any
) -> str:
    """Submits prep -> train, which must be refused with nothing sent or kept; the message."""
    pipeline = PipelineSpec(
        "chain",
        [PipelineStep("prep", prep), PipelineStep("train", train)],
        existing_datasets=["raw"],
    )
    created = service.create_requests
    artifacts = service.store(v2.ARTIFACT_DATASTORE)
    kept = artifacts.list("")

    with pytest.raises(InvalidInputError) as refused:
        harness.aml.submit_pipeline(pipeline)

    assert service.create_requests == created
    assert artifacts.list("") == kept
    return str(refused.value)


def test_a_handed_on_input_at_a_target_folder_is_refused_before_anything_is_sent(
    harness: AzureMLV2Harness, aml_v2_service: v2.FakeAzureMLV2Service
) -> None:
    make_raw(harness)
    at_a_folder = DatasetConfig("features", target_folder=Path("/data/features"))
    train = dataclasses.replace(harness.job_spec(TRAIN), input_datasets=(at_a_folder,))

    message = refused_before_anything_is_sent(
        harness, aml_v2_service, harness.job_spec(PREP), train
    )

    assert "step 'train'" in message and "target_folder" in message and "AzureML v2" in message


def test_steps_sharing_a_snapshot_folder_with_other_ignore_rules_are_refused(
    harness: AzureMLV2Harness, aml_v2_service: v2.FakeAzureMLV2Service
) -> None:
    make_raw(harness)
    prep = harness.job_spec(PREP)
    train = dataclasses.replace(
        harness.job_spec(TRAIN),
        snapshot_root=prep.snapshot_root,
        entry_script=prep.entry_script,
        ignored_folders=("cache",),
    )

    message = refused_before_anything_is_sent(harness, aml_v2_service, prep, train)

    assert "share the snapshot folder" in message


def test_run_inputs_of_a_single_job(harness: AzureMLV2Harness) -> None:
    raw = make_raw(harness)
    ref = harness.aml.submit(harness.job_spec(Job(input_datasets=("raw",))))
    assert harness.settle(ref).succeeded

    assert harness.aml.run_inputs(ref) == [raw]


def test_a_pipeline_job_keeps_no_single_job_spec(harness: AzureMLV2Harness) -> None:
    make_raw(harness)
    ref = harness.aml.submit_pipeline(chain(harness))

    with pytest.raises(InvalidInputError, match="submitted_pipeline"):
        harness.aml.submitted_spec(ref)


def test_a_job_that_is_not_a_pipeline_has_no_steps(harness: AzureMLV2Harness) -> None:
    ref = harness.aml.submit(harness.job_spec(Job()))

    with pytest.raises(InvalidInputError, match="not a pipeline run"):
        harness.aml.pipeline_steps(ref)


# ---- published pipelines ------------------------------------------------------------------


def published_chain(harness: AzureMLV2Harness) -> AzureMLV2Backend:
    """Makes `raw` and publishes the chain as `prep_then_train`; returns the backend."""
    make_raw(harness)
    aml = harness.aml
    assert isinstance(aml, AzureMLV2Backend)
    aml.publish_pipeline(chain(harness, name="prep_then_train"))
    return aml


def test_publishing_registers_component_versions_by_content(
    harness: AzureMLV2Harness, aml_v2_service: v2.FakeAzureMLV2Service
) -> None:
    make_raw(harness)
    pipeline = chain(harness, name="prep_then_train")
    aml = harness.aml

    first = aml.publish_pipeline(pipeline, description="the chain")
    again = aml.publish_pipeline(pipeline)
    changed = aml.publish_pipeline(chain(harness, name="prep_then_train"))

    assert (first.name, first.version, first.description) == ("prep_then_train", 1, "the chain")
    assert again == first
    assert changed.version == 2
    assert first.endpoint == "azureml:prep_then_train:1"
    assert first.id.endswith("/components/prep_then_train/versions/1")
    assert aml.published_pipelines() == [first, changed]
    assert aml.published_pipelines("prep_then_train") == [first, changed]
    component = aml_v2_service.component("prep_then_train", 1)
    assert component.type == "pipeline" and list(component.jobs) == ["prep", "train"]
    # Existing datasets are read at the version latest when a job of it runs.
    assert component.jobs["prep"].inputs["INPUT_0"]._data.path == "azureml:raw@latest"


def test_the_same_pipeline_from_another_folder_is_the_version_published(
    harness: AzureMLV2Harness, tmp_path: Path
) -> None:
    """The digest was of the steps' absolute snapshot folders: another checkout of the same
    project published a new component version."""
    aml = harness.backend
    make_raw(harness)
    pipeline = chain(harness, name="prep_then_train")
    first = aml.publish_pipeline(pipeline)

    again = aml.publish_pipeline(moved(pipeline, tmp_path / "another-checkout"))

    assert again == first
    assert aml.published_pipelines("prep_then_train") == [first]


def test_a_published_pipeline_runs_as_a_pipeline_job(harness: AzureMLV2Harness) -> None:
    make_raw(harness)
    aml = harness.aml
    pipeline = chain(harness, name="prep_then_train")
    aml.publish_pipeline(pipeline)
    raw2 = make_raw(harness)  # published after: the job reads the latest version

    ref = aml.submit_published_pipeline("prep_then_train", submission_id="from-published")

    assert aml.submit_published_pipeline("prep_then_train", submission_id="from-published") == ref
    assert harness.settle(ref).succeeded
    assert aml.submitted_pipeline(ref) == pipeline
    prep, train = (step_run(s) for s in aml.pipeline_steps(ref))
    assert aml.run_inputs(prep) == [raw2]
    assert aml.run_inputs(train) == aml.run_outputs(prep)


def test_what_is_not_published_is_refused(
    harness: AzureMLV2Harness, aml_v2_service: v2.FakeAzureMLV2Service
) -> None:
    aml = published_chain(harness)

    with pytest.raises(PipelineNotFoundError, match="prep_then_train"):
        aml.submit_published_pipeline("nothing_here")
    with pytest.raises(PipelineNotFoundError, match="version 7"):
        aml.submit_published_pipeline("prep_then_train", version=7)
    with pytest.raises(InvalidInputError, match="component"):
        aml.publish_pipeline(chain(harness, name="Prep-Then-Train"))
    assert list(aml_v2_service.components) == ["prep_then_train"]


@pytest.mark.parametrize("version", [True, 1.0, "1", 0, -1])
def test_a_version_that_is_no_version_number_is_refused_before_anything_is_sent(
    harness: AzureMLV2Harness, aml_v2_service: v2.FakeAzureMLV2Service, version: object
) -> None:
    aml = published_chain(harness)
    jobs = len(aml_v2_service.jobs)

    with pytest.raises(InvalidInputError, match="version must be"):  # True is no version 1
        aml.submit_published_pipeline("prep_then_train", version=version)  # type: ignore[arg-type]
    assert len(aml_v2_service.jobs) == jobs


# ---- schedules ----------------------------------------------------------------------------


def test_a_schedule_is_a_job_schedule_with_a_cron_trigger(
    harness: AzureMLV2Harness, aml_v2_service: v2.FakeAzureMLV2Service
) -> None:
    aml = published_chain(harness)
    nightly = PipelineSchedule("nightly", "prep_then_train", "0 2 * * *", timezone="Europe/London")

    made = aml.schedule_pipeline(nightly)

    assert made == dataclasses.replace(nightly, id=made.id) and made.id.endswith("/nightly")
    entity = aml_v2_service.schedule_entities["nightly"]
    assert entity.trigger.expression == "0 2 * * *"
    assert entity.trigger.time_zone == "GMT Standard Time"  # AzureML's Windows zone names
    assert entity.create_job.component == "azureml:prep_then_train@latest"
    assert aml.pipeline_schedules() == [made]

    paused = aml.schedule_pipeline(dataclasses.replace(nightly, cron="30 3 * * 1", active=False))

    assert aml.pipeline_schedules() == [paused]
    assert (paused.cron, paused.active) == ("30 3 * * 1", False)


def test_a_schedule_fires_the_latest_published_version(
    harness: AzureMLV2Harness, aml_v2_service: v2.FakeAzureMLV2Service
) -> None:
    aml = published_chain(harness)
    aml.schedule_pipeline(PipelineSchedule("nightly", "prep_then_train", "0 2 * * *"))
    latest = chain(harness, name="prep_then_train")
    aml.publish_pipeline(latest)

    fired = aml.get_run_ref(aml_v2_service.fire_schedule("nightly"))

    assert harness.settle(fired).succeeded
    assert aml.submitted_pipeline(fired) == latest
    assert [s.step for s in aml.pipeline_steps(fired)] == ["prep", "train"]


def test_removing_a_schedule(harness: AzureMLV2Harness) -> None:
    aml = published_chain(harness)
    aml.schedule_pipeline(PipelineSchedule("nightly", "prep_then_train", "0 2 * * *"))

    aml.remove_pipeline_schedule("nightly")
    aml.remove_pipeline_schedule("nightly")  # absent: no error

    assert aml.pipeline_schedules() == []


def test_schedules_of_what_is_not_published_or_in_an_unknown_zone_are_refused(
    harness: AzureMLV2Harness, aml_v2_service: v2.FakeAzureMLV2Service
) -> None:
    aml = published_chain(harness)

    with pytest.raises(PipelineNotFoundError):
        aml.schedule_pipeline(PipelineSchedule("nightly", "nothing_here", "0 2 * * *"))
    with pytest.raises(InvalidInputError, match="Europe/Volgograd"):
        aml.schedule_pipeline(
            PipelineSchedule("nightly", "prep_then_train", "0 2 * * *", timezone="Europe/Volgograd")
        )
    assert aml_v2_service.schedule_entities == {}


def test_a_job_spec_in_a_pipeline_is_planned_as_a_single_job_is(
    harness: AzureMLV2Harness, aml_v2_service: v2.FakeAzureMLV2Service
) -> None:
    """The node's command and variables are those of the same spec submitted alone."""
    make_raw(harness)
    spec = harness.job_spec(Job(input_datasets=("raw",)))
    spec = dataclasses.replace(spec, args=("--epochs", "3"), environment_variables={"A": "1"})
    harness.aml.submit(spec)
    single = aml_v2_service.submitted[-1][0]

    harness.aml.submit_pipeline(
        PipelineSpec("one", [PipelineStep("only", spec)], existing_datasets=["raw"])
    )

    node = submitted_pipeline_job(aml_v2_service).jobs["only"]
    assert node.command == single.command
    assert node.environment == single.environment
    assert node.environment_variables == single.environment_variables


# ---- executed: the steps' scripts really run ----------------------------------------------

PREP_SCRIPT = """\
from himl_tasks.runtime import get_run_info

info = get_run_info()
numbers = (info.input_datasets[0] / "numbers.txt").read_text().split()
(info.output_datasets[0] / "total.txt").write_text(str(sum(int(n) for n in numbers)))
"""
TRAIN_SCRIPT = """\
from pathlib import Path
from himl_tasks.runtime import get_run_info

total = (get_run_info().input_datasets[0] / "total.txt").read_text()
Path("outputs").mkdir(exist_ok=True)
Path("outputs/model.txt").write_text(f"trained on {total}")
"""


def test_the_chain_runs_end_to_end_and_unchanged_steps_are_not_run_again(
    executing_aml_v2: AzureMLV2Backend,
    executing_aml_v2_service: Any,
    tmp_path: Path,
) -> None:
    aml, service = executing_aml_v2, executing_aml_v2_service
    service.store(v2.DEFAULT_DATASTORE).upload_folder(
        write_tree(tmp_path / "data", {"numbers.txt": b"1 2 3\n"}), "raw"
    )
    steps = []
    for name, script, reads, writes in (
        ("prep", PREP_SCRIPT, ["raw"], ["features"]),
        ("train", TRAIN_SCRIPT, ["features"], []),
    ):
        folder = write_tree(tmp_path / name, {f"{name}.py": script.encode()})
        (folder / "environment.yml").write_text("name: job\ndependencies:\n  - python=3.11\n")
        spec = JobSpec(
            entry_script=f"{name}.py",
            snapshot_root=folder,
            compute="cpu-cluster",
            input_datasets=reads,
            output_datasets=writes,
        )
        steps.append(PipelineStep(name, spec))
    pipeline = PipelineSpec("chain", steps, existing_datasets=["raw"])

    ref = aml.submit_pipeline(pipeline)
    assert aml.wait(ref, timeout=DEADLINE_SECONDS, poll=0.2).succeeded, aml.get_state(ref).error

    prep, train = (step_run(s) for s in aml.pipeline_steps(ref))
    (features,) = aml.run_outputs(prep)
    assert aml.run_inputs(train) == [features]
    aml.download_files(train, "outputs/model.txt", tmp_path / "fetched")
    assert (tmp_path / "fetched/outputs/model.txt").read_text() == "trained on 6"
    ran = len(service.executed)

    again = aml.submit_pipeline(pipeline)
    assert aml.wait(again, timeout=DEADLINE_SECONDS, poll=0.2).succeeded

    assert [s.reused_from for s in aml.pipeline_steps(again)] == [prep, train]
    assert len(service.executed) == ran  # no step's script ran again
