"""Schedules are checked when made: a name, a five-field cron expression and a time zone."""

from __future__ import annotations

import pytest

from himl_tasks.errors import InvalidInputError
from himl_tasks.pipeline_runs import PipelineSchedule, StepRun
from himl_tasks.runs import RunRef


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
