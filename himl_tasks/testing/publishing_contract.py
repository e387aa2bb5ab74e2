"""The publishing contract: published pipelines and their schedules, the same on every backend.

A module of a project's tests subclasses `PublishingContract` and provides the `harness`
fixture, a `BackendHarness` (`himl_tasks.testing.backend_contract`). The suite needs only
what every harness already offers:

- `harness.backend`: a backend on a fresh workspace for each test, that runs pipelines
  (`submit_pipeline`) and implements the publishing primitives (`publish_pipeline`,
  `published_pipelines`, `submit_published_pipeline`, `schedule_pipeline`,
  `pipeline_schedules`, `remove_pipeline_schedule`);
- `harness.job_spec(Job(log_lines=...))`: a job spec that completes; each step of a
  pipeline here is one, and each call gives a job of its own (another script);
- `harness.settle(ref)`: lets a run (a pipeline run or a step's run) go on to its end.

Pipeline and schedule names carry a random suffix, so the suite also runs on a workspace
that is not fresh (a live one) and on a schedule service shared between tests (a Prefect
server). A refusal's message (`PipelineNotFoundError`) names what was asked for (the name,
and "version N" for a version) and what is published under the name (or the names
published). A step's job only logs a line: no dataset passes between steps here, the pipeline
contract covers that.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import uuid
from pathlib import Path

import pytest

from himl_tasks.errors import PipelineNotFoundError
from himl_tasks.pipeline_runs import PipelineSchedule
from himl_tasks.pipelines import PipelineSpec, PipelineStep
from himl_tasks.runs import RunRef, RunStatus
from himl_tasks.testing.backend_contract import BackendHarness, Job

NIGHTLY = "0 2 * * *"  # 02:00 every day: a cron every backend expresses


def unique(prefix: str) -> str:
    """A pipeline or schedule name no other test uses: `prefix`, '_' and 8 random hex digits.

    Lower case, digits and '_' only: the names every backend takes (AzureML v2 names a
    published pipeline's component by it, and takes no '-').
    """
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def one_step(harness: BackendHarness, name: str) -> PipelineSpec:
    """The pipeline `name` of one step, `prep`."""
    return PipelineSpec(name, [PipelineStep("prep", harness.job_spec(Job(log_lines=("prep",))))])


def published(harness: BackendHarness) -> PipelineSpec:
    """A one-step pipeline of a new name, published (version 1)."""
    pipeline = one_step(harness, unique("published"))
    harness.backend.publish_pipeline(pipeline)
    return pipeline


def two_steps(harness: BackendHarness, first: PipelineSpec) -> PipelineSpec:
    """`first` with a second step, `train`, after `prep`: a changed pipeline of its name."""
    train = PipelineStep("train", harness.job_spec(Job(log_lines=("train",))), after=["prep"])
    return PipelineSpec(first.name, [*first.steps, train])


def moved(pipeline: PipelineSpec, folder: Path) -> PipelineSpec:
    """The same pipeline from a copy of each step's snapshot folder under `folder`.

    As from another checkout of the project: every path of a step's job that was in its
    snapshot folder is in the copy.
    """
    fields = json.loads(pipeline.to_json())
    for step in fields["steps"]:
        job = step["job"]
        root, copy = Path(job["snapshot_root"]), folder / step["name"]
        shutil.copytree(root, copy)
        for name in ("snapshot_root", "entry_script", "conda_environment_file"):
            if job[name] is not None and Path(job[name]).is_relative_to(root):
                job[name] = str(copy / Path(job[name]).relative_to(root))
    return PipelineSpec.from_json(json.dumps(fields))


class PublishingContract:
    """The publishing tests every backend passes; a subclass provides the `harness` fixture."""

    @pytest.fixture
    def harness(self) -> BackendHarness:
        """A harness on a fresh workspace: override this fixture in the subclass."""
        raise NotImplementedError("a PublishingContract subclass provides the harness fixture")

    def test_publishing_makes_versions_only_of_changes(self, harness: BackendHarness) -> None:
        backend = harness.backend
        pipeline = one_step(harness, unique("published"))

        first = backend.publish_pipeline(pipeline, description="the first")
        again = backend.publish_pipeline(pipeline, description="the first")
        second = backend.publish_pipeline(two_steps(harness, pipeline), description="two steps")

        assert (first.name, first.version, first.description) == (pipeline.name, 1, "the first")
        assert first.id and first.endpoint
        assert again == first
        assert (second.name, second.version, second.description) == (pipeline.name, 2, "two steps")
        assert second.id and second.id != first.id
        assert backend.published_pipelines(pipeline.name) == [first, second]
        assert [p for p in backend.published_pipelines() if p.name == pipeline.name] == [
            first,
            second,
        ]
        assert backend.published_pipelines(unique("never_published")) == []

    def test_the_same_pipeline_from_another_folder_is_the_version_published(
        self, harness: BackendHarness
    ) -> None:
        """What is compared is content, not where the project is.

        The same pipeline published from another checkout of the project (its folders
        elsewhere) gives the version published, not a new one.
        """
        backend = harness.backend
        pipeline = one_step(harness, unique("published"))
        first = backend.publish_pipeline(pipeline)

        with tempfile.TemporaryDirectory() as elsewhere:
            again = backend.publish_pipeline(moved(pipeline, Path(elsewhere)))

        assert again == first
        assert backend.published_pipelines(pipeline.name) == [first]

    def test_a_published_pipeline_runs_as_a_pipeline_run(self, harness: BackendHarness) -> None:
        backend = harness.backend
        pipeline = published(harness)
        backend.publish_pipeline(two_steps(harness, pipeline))
        submission = f"published-{uuid.uuid4().hex}"

        latest = backend.submit_published_pipeline(pipeline.name, submission_id=submission)
        again = backend.submit_published_pipeline(pipeline.name, submission_id=submission)
        assert again == latest
        self.assert_completes_with_steps(harness, latest, 2)
        first = backend.submit_published_pipeline(pipeline.name, version=1)

        assert first != latest
        self.assert_completes_with_steps(harness, first, 1)

    @staticmethod
    def assert_completes_with_steps(harness: BackendHarness, ref: RunRef, steps: int) -> None:
        """The pipeline run completes, with `steps` child runs that completed."""
        assert harness.settle(ref).status is RunStatus.COMPLETED
        children = harness.backend.child_runs(ref)
        assert len(children) == steps and ref not in children
        for child in children:
            assert harness.settle(child).status is RunStatus.COMPLETED

    def test_an_unknown_name_or_version_is_refused_listing_what_is_published(
        self, harness: BackendHarness
    ) -> None:
        backend = harness.backend
        pipeline = published(harness)
        runs_before = backend.list_runs()
        unknown = unique("never_published")

        with pytest.raises(PipelineNotFoundError) as no_name:
            backend.submit_published_pipeline(unknown)
        with pytest.raises(PipelineNotFoundError) as no_version:
            backend.submit_published_pipeline(pipeline.name, version=2)

        assert isinstance(no_name.value, LookupError)
        assert unknown in str(no_name.value) and pipeline.name in str(no_name.value)
        assert pipeline.name in str(no_version.value) and "version 2" in str(no_version.value)
        assert backend.list_runs() == runs_before

    def test_a_schedule_is_listed_and_updated_by_its_name(self, harness: BackendHarness) -> None:
        backend = harness.backend
        pipeline = published(harness)
        name = unique("nightly")

        made = backend.schedule_pipeline(
            PipelineSchedule(name, pipeline.name, NIGHTLY, timezone="Europe/London")
        )
        listed = [s for s in backend.pipeline_schedules() if s.name == name]
        changed = backend.schedule_pipeline(
            PipelineSchedule(name, pipeline.name, "30 3 * * 1", active=False)
        )
        relisted = [s for s in backend.pipeline_schedules() if s.name == name]

        assert made.id and listed == [made]
        assert (made.pipeline, made.cron, made.timezone, made.active) == (
            pipeline.name,
            NIGHTLY,
            "Europe/London",
            True,
        )
        assert relisted == [changed] and changed.id == made.id
        assert (changed.cron, changed.timezone, changed.active) == ("30 3 * * 1", "UTC", False)

    def test_scheduling_an_unpublished_pipeline_is_refused_before_anything_changes(
        self, harness: BackendHarness
    ) -> None:
        backend = harness.backend
        pipeline = published(harness)
        name = unique("nightly")
        backend.schedule_pipeline(PipelineSchedule(name, pipeline.name, NIGHTLY))
        before = backend.pipeline_schedules()
        unknown = unique("never_published")

        with pytest.raises(PipelineNotFoundError) as new:
            backend.schedule_pipeline(PipelineSchedule(unique("nightly"), unknown, NIGHTLY))
        with pytest.raises(PipelineNotFoundError):
            backend.schedule_pipeline(PipelineSchedule(name, unknown, "30 3 * * 1"))

        assert unknown in str(new.value) and pipeline.name in str(new.value)
        assert backend.pipeline_schedules() == before
        assert backend.published_pipelines(unknown) == []

    def test_a_removed_schedule_is_gone_and_removing_it_again_is_no_error(
        self, harness: BackendHarness
    ) -> None:
        backend = harness.backend
        pipeline = published(harness)
        kept, removed = unique("kept"), unique("removed")
        backend.schedule_pipeline(PipelineSchedule(kept, pipeline.name, NIGHTLY))
        backend.schedule_pipeline(PipelineSchedule(removed, pipeline.name, NIGHTLY))

        backend.remove_pipeline_schedule(removed)
        backend.remove_pipeline_schedule(removed)
        backend.remove_pipeline_schedule(unique("never_made"))

        names = [s.name for s in backend.pipeline_schedules()]
        assert kept in names and removed not in names
        assert backend.published_pipelines(pipeline.name) != []  # the pipeline stays published
