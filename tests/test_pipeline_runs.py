"""Schedules are checked when made: a name, a five-field cron expression and a time zone."""

from __future__ import annotations

from pathlib import Path

import pytest

from himl_tasks.datasets import ResolvedDataset
from himl_tasks.errors import InvalidInputError
from himl_tasks.job_spec import JobSpec
from himl_tasks.pipeline_runs import PipelineSchedule, StepRun, published_digest
from himl_tasks.pipelines import PipelineSpec, PipelineStep
from himl_tasks.runs import RunRef
from himl_tasks.snapshot import Snapshot, select_snapshot


def test_a_schedule_keeps_its_cron_with_single_spaces() -> None:
    schedule = PipelineSchedule("nightly", "preprocess-then-train", " 0  2 * * 1-5 ")

    assert schedule.cron == "0 2 * * 1-5"
    assert (schedule.timezone, schedule.active, schedule.id) == ("UTC", True, "")


@pytest.mark.parametrize(
    ("cron", "problem"),
    [
        ("0 2 * *", "it has 4 fields"),
        ("0 0 2 * * *", "it has 6 fields"),
        ("61 * * * *", "Bad minute"),
        ("0 25 * * *", "Bad hour"),
        ("@daily", "it has 1 fields"),
    ],
)
def test_a_cron_expression_that_is_not_five_valid_fields_is_refused(
    cron: str, problem: str
) -> None:
    with pytest.raises(InvalidInputError) as refused:
        PipelineSchedule("nightly", "train", cron)

    assert problem in str(refused.value) and "five fields" in str(refused.value)


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"name": "1st"}, "not a usable schedule name"),
        ({"name": "a b"}, "not a usable schedule name"),
        ({"pipeline": ""}, "pipeline must name a published pipeline"),
        ({"timezone": "Mars/Olympus"}, "not a time zone"),
        ({"timezone": ""}, "not a time zone"),
        ({"cron": 5}, "cron must be text"),
        # "false" is truthy: a schedule meant to be kept quiet would fire.
        ({"active": "false"}, "active must be True or False"),
        ({"active": None}, "active must be True or False"),
        ({"id": None}, "id must be text"),
    ],
)
def test_unusable_schedule_fields_are_refused(fields: dict[str, object], words: str) -> None:
    given: dict[str, object] = {"name": "nightly", "pipeline": "train", "cron": "0 2 * * *"}
    given.update(fields)
    with pytest.raises(InvalidInputError, match=words):
        PipelineSchedule(**given)  # type: ignore[arg-type]


def test_a_step_run_is_reused_when_it_took_an_earlier_runs_outputs() -> None:
    earlier = RunRef("exp", "run-1")
    assert StepRun("prep", RunRef("exp", "run-2"), reused_from=earlier).reused
    assert not StepRun("prep", RunRef("exp", "run-2")).reused
    assert not StepRun("train", None).reused


def test_a_published_digest_is_the_pipelines_content_not_where_its_project_is(
    tmp_path: Path,
) -> None:
    def pipeline_in(folder: Path, code: str) -> tuple[PipelineSpec, dict[str, Snapshot]]:
        folder.mkdir()
        (folder / "prep.py").write_text(code, encoding="utf-8")
        job = JobSpec(entry_script=folder / "prep.py", snapshot_root=folder)
        pipeline = PipelineSpec("p", [PipelineStep("prep", job)])
        return pipeline, {"prep": select_snapshot(folder)}

    here = published_digest(*pipeline_in(tmp_path / "checkout", "print(1)\n"))
    elsewhere = published_digest(*pipeline_in(tmp_path / "another", "print(1)\n"))
    changed = published_digest(*pipeline_in(tmp_path / "changed", "print(2)\n"))
    raw = ResolvedDataset("raw", 3, "workspaceblobstore", "raw/")
    fixed_inputs = published_digest(*pipeline_in(tmp_path / "inputs", "print(1)\n"), [raw])

    assert here == elsewhere
    assert len({here, changed, fixed_inputs}) == 3
