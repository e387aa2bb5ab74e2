"""A `PipelineSchedule` as an AzureML SDK v2 `JobSchedule` with a `CronTrigger`, and back.

The schedule's job is a pipeline job of the published pipeline's latest version
(`azureml:<name>@latest`), so each firing runs the version latest then. AzureML reads a
cron trigger's time zone as a Windows time zone name (`CronTrigger.time_zone`, one of
`azure.ai.ml.constants.TimeZone`: "GMT Standard Time", "W. Europe Standard Time", ...,
azure/ai/ml/constants/_common.py), while a `PipelineSchedule` holds an IANA name; the
CLDR mapping (`azureml_common.time_zones`) turns one into the other, and the
IANA name is kept in the schedule's `himl_timezone` tag so it reads back as given. A zone
CLDR maps to a Windows zone that AzureML does not list is refused before anything is sent.

A schedule is removed by disabling it, then deleting it: the SDK's `begin_disable` and
`begin_delete` (azure/ai/ml/operations/_schedule_operations.py), as the docs do it ("Delete
a schedule ... you need to disable it first", how-to-schedule-pipeline-job.md).
"""

from __future__ import annotations

from typing import Any

from himl_tasks.backends.azureml_common.tags import PIPELINE_TAG
from himl_tasks.backends.azureml_common.time_zones import iana_time_zone, windows_time_zone
from himl_tasks.backends.azureml_v2 import sdk
from himl_tasks.pipeline_runs import PipelineSchedule

TIMEZONE_TAG = "himl_timezone"


def job_schedule(schedule: PipelineSchedule, job: Any) -> Any:
    """The `JobSchedule` that submits `job` on the schedule's cron expression (nothing sent)."""
    with sdk.quiet():
        from azure.ai.ml.constants import TimeZone

        time_zone = windows_time_zone(schedule.timezone, {zone.value for zone in TimeZone})
        entities = sdk.entities()
        return entities.JobSchedule(
            name=schedule.name,
            trigger=entities.CronTrigger(expression=schedule.cron, time_zone=time_zone),
            create_job=job,
            tags={PIPELINE_TAG: schedule.pipeline, TIMEZONE_TAG: schedule.timezone},
            is_enabled=schedule.active,
        )


def schedule_of(entity: Any) -> PipelineSchedule | None:
    """The `PipelineSchedule` a workspace schedule is, or None if this backend did not make it."""
    tags = getattr(entity, "tags", None) or {}
    trigger = getattr(entity, "trigger", None)
    expression = getattr(trigger, "expression", None)
    if PIPELINE_TAG not in tags or not expression:
        return None
    timezone = str(tags.get(TIMEZONE_TAG) or "")
    if not timezone:
        timezone = iana_time_zone(str(getattr(trigger, "time_zone", "") or "UTC"))
    return PipelineSchedule(
        str(entity.name),
        str(tags[PIPELINE_TAG]),
        str(expression),
        timezone=timezone,
        active=getattr(entity, "is_enabled", True) is not False,
        id=str(getattr(entity, "id", "") or ""),
    )
