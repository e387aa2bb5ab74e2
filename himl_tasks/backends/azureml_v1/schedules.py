"""Pipeline schedules on AzureML v1: `Schedule`s on a pipeline endpoint, found by name.

A v1 `Schedule` keeps a name, a description, a recurrence and a status, "Active" or
"Disabled" (azureml/pipeline/core/schedule.py); it cannot be deleted (the SDK has `disable`
and `update`, no delete). So a schedule's description holds its cron expression and time
zone as written (the `ScheduleRecurrence` made of them does not) and whether it was removed:
removing a schedule disables it and marks it removed, and `listed_schedules` leaves it out.
Scheduling the name again updates and re-enables it.
"""

from __future__ import annotations

import re
from typing import Any

from himl_tasks.backends.azureml_v1.service import AzureMLService
from himl_tasks.pipeline_runs import PipelineSchedule

_MARK = re.compile(r"\[himl cron=(?P<cron>[^;\]]+);tz=(?P<tz>[^;\]]+);(?P<state>kept|removed)\]$")


def schedule_description(cron: str, timezone: str, *, removed: bool = False) -> str:
    """A schedule's description: its cron, time zone, and whether it was removed."""
    return f"[himl cron={cron};tz={timezone};{'removed' if removed else 'kept'}]"


def read_schedule_mark(text: str | None) -> tuple[str, str, bool] | None:
    """(cron, time zone, removed) from a description `schedule_description` wrote, else None."""
    found = _MARK.search(text or "")
    if found is None:
        return None
    return found["cron"], found["tz"], found["state"] == "removed"


def put_schedule(
    service: AzureMLService,
    schedule: PipelineSchedule,
    recurrence: Any,
    endpoint: Any,
    experiment: str,
) -> str:
    """Creates the schedule on the endpoint, or updates the one of its name; returns its id.

    A schedule of that name on another endpoint is disabled and a new one made: a v1
    schedule's pipeline cannot be changed (`Schedule.update` takes no pipeline).
    """
    description = schedule_description(schedule.cron, schedule.timezone)
    existing = schedule_named(service, schedule.name)
    if existing is not None and existing.pipeline_endpoint_id != endpoint.id:
        service.update_schedule(existing, existing.recurrence, existing.description, active=False)
        existing = None
    if existing is None:
        existing = service.create_schedule(
            schedule.name, endpoint.id, experiment, recurrence, description
        )
        if schedule.active:
            return str(existing.id)
    existing = service.update_schedule(existing, recurrence, description, active=schedule.active)
    return str(existing.id)


def listed_schedules(service: AzureMLService) -> list[PipelineSchedule]:
    """The schedules himl-tasks made and did not remove, by name."""
    names = {e.id: e.name for e in service.pipeline_endpoints()}
    found = []
    for each in service.schedules():
        mark = read_schedule_mark(each.description)
        if mark is None or mark[2] or each.pipeline_endpoint_id not in names:
            continue
        cron, timezone, _ = mark
        found.append(
            PipelineSchedule(
                each.name,
                names[each.pipeline_endpoint_id],
                cron,
                timezone=timezone,
                active=each.status == "Active",
                id=str(each.id),
            )
        )
    return sorted(found, key=lambda s: s.name)


def remove_schedule(service: AzureMLService, name: str) -> None:
    """Disables the schedule of that name and marks it removed (none: nothing to do)."""
    existing = schedule_named(service, name)
    if existing is None:
        return
    mark = read_schedule_mark(existing.description)
    cron, timezone = (mark[0], mark[1]) if mark else ("", "")
    description = schedule_description(cron, timezone, removed=True)
    service.update_schedule(existing, existing.recurrence, description, active=False)


def schedule_named(service: AzureMLService, name: str) -> Any:
    """The workspace's schedule of that name (the newest, if several), or None."""
    found = [s for s in service.schedules() if s.name == name]
    return found[-1] if found else None
