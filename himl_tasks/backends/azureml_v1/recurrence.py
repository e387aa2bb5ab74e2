"""A schedule's cron expression as AzureML v1's `ScheduleRecurrence`, or a refusal.

`ScheduleRecurrence(frequency, interval, start_time, time_zone, hours, minutes, week_days)`
(azureml/pipeline/core/schedule.py) fires every `interval` minutes, hours, days or weeks from
its start time; on "Day" and "Week" at lists of hours and minutes, and on "Week" on listed
week days (its `validate`: hours, minutes only for Day and Week, week days only for Week). So
these cron shapes translate exactly, and nothing else does:

- `*/n * * * *` (n divides 60) and `* * * * *`: every n minutes from a round hour;
- `m */n * * *` (n divides 24) and `m * * * *`: every n hours at minute m, from midnight
  (the start time's minute);
- `M H * * *`: every day at the hours H and minutes M (numbers, lists, ranges, steps: any
  other minute or hour pattern, `*/7 * * * *` say, is a list of hours and minutes);
- `M H * * D`: every week on the days D at the hours H and minutes M.

Its time zones are `TimeZone`'s Windows names; a schedule's IANA time zone is translated by
the CLDR table (`azureml_common.time_zones`), and one without a v1 name is refused.
"""

from __future__ import annotations

import datetime
from typing import Any

from himl_tasks.backends.azureml_common.time_zones import windows_time_zone
from himl_tasks.errors import InvalidInputError
from himl_tasks.pipeline_runs import PipelineSchedule

# A fixed start on a round hour (a Monday at midnight): intervals count from it.
START = datetime.datetime(2026, 1, 5)
WEEK_DAYS = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")
_DAY_NAMES = {name[:3].lower(): index for index, name in enumerate(WEEK_DAYS)}
WHAT_V1_EXPRESSES = (
    "every n minutes ('*/15 * * * *', n dividing 60), every n hours at one minute "
    "('30 */6 * * *', n dividing 24), every day at hours and minutes ('0 2,14 * * *'), or "
    "every week on days at hours and minutes ('0 2 * * 1-5'); day of month and month must be "
    "'*'"
)


def recurrence_for(schedule: PipelineSchedule) -> Any:
    """The `ScheduleRecurrence` that fires when the schedule's cron expression does.

    Raises:
        InvalidInputError: The expression (or time zone) has no `ScheduleRecurrence`; the
            message says which shapes have one.
    """
    from azureml.pipeline.core import ScheduleRecurrence, TimeZone

    arguments = translate_cron(schedule)
    zone = windows_time_zone(schedule.timezone, {zone.value for zone in TimeZone})
    return ScheduleRecurrence(time_zone=TimeZone(zone), **arguments)


def translate_cron(schedule: PipelineSchedule) -> dict[str, Any]:
    """The `ScheduleRecurrence` arguments (but the time zone) for the schedule's cron.

    Raises:
        InvalidInputError: As `recurrence_for`.
    """

    def refuse(problem: str) -> InvalidInputError:
        return InvalidInputError(
            f"schedule '{schedule.name}': AzureML v1's ScheduleRecurrence cannot fire on "
            f"{schedule.cron!r} ({schedule.timezone}): {problem}. It can fire "
            f"{WHAT_V1_EXPRESSES}. Nothing was scheduled"
        )

    minute, hour, day_of_month, month, day_of_week = schedule.cron.split()
    if day_of_month != "*" or month != "*":
        raise refuse("day of month and month must be '*'")
    every = {"start_time": START}
    if hour == "*" and day_of_week == "*":
        if minute == "*":
            return {"frequency": "Minute", "interval": 1, **every}
        if minute.startswith("*/") and _divides(minute[2:], 60):
            return {"frequency": "Minute", "interval": int(minute[2:]), **every}
    if minute.isdigit() and int(minute) < 60 and day_of_week == "*":
        at_minute = {"start_time": START.replace(minute=int(minute))}
        if hour == "*":
            return {"frequency": "Hour", "interval": 1, **at_minute}
        if hour.startswith("*/") and _divides(hour[2:], 24):
            return {"frequency": "Hour", "interval": int(hour[2:]), **at_minute}
    minutes, hours = _values(minute, 0, 59), _values(hour, 0, 23)
    if minutes is None or hours is None:
        raise refuse("minutes and hours must be numbers, lists, ranges or steps")
    daily = {"interval": 1, "start_time": START, "hours": hours, "minutes": minutes}
    if day_of_week == "*":
        return {"frequency": "Day", **daily}
    days = _week_days(day_of_week)
    if days is None:
        raise refuse(f"day of week {day_of_week!r} is not days, lists or ranges")
    return {"frequency": "Week", "week_days": days, **daily}


def _divides(text: str, whole: int) -> bool:
    return text.isdigit() and 0 < int(text) <= whole and whole % int(text) == 0


def _values(field: str, low: int, high: int) -> list[int] | None:
    """The numbers a cron field names (lists, ranges, steps), or None for what is not one."""
    found: set[int] = set()
    for part in field.split(","):
        body, _, step = part.partition("/")
        if body == "*":
            start, end = low, high
        elif "-" in body:
            first, _, last = body.partition("-")
            if not (first.isdigit() and last.isdigit()):
                return None
            start, end = int(first), int(last)
        elif body.isdigit():
            start = end = int(body)
            if step:
                end = high
        else:
            return None
        if step and not step.isdigit():
            return None
        found.update(range(start, end + 1, int(step) if step else 1))
    return sorted(found) if found and min(found) >= low and max(found) <= high else None


def _week_days(field: str) -> list[str] | None:
    """The week days a day-of-week field names (0 and 7 are Sunday; names like MON)."""
    named = field.lower()
    for short, index in _DAY_NAMES.items():
        named = named.replace(short, str(index))
    numbers = _values(named, 0, 7)
    if numbers is None:
        return None
    return [day for index, day in enumerate(WEEK_DAYS) if index in numbers or index + 7 in numbers]
