"""What a pipeline becomes on a backend: its steps' runs, published versions and schedules.

A submitted pipeline is one run whose steps are child runs (`StepRun`: a step's run, or none
for a step that never started, and the earlier run whose outputs a reused step took). A
published pipeline (`PublishedPipeline`) is a pipeline kept under its name in versions, which
anyone can submit again without its code; a schedule (`PipelineSchedule`) submits a published
pipeline on a cron expression, in the workspace (on the local backend, as a Prefect
deployment's schedule).
"""

from __future__ import annotations

import datetime
import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from himl_tasks.datasets import ResolvedDataset
from himl_tasks.errors import InvalidInputError
from himl_tasks.pipelines import PipelineSpec
from himl_tasks.run_plan import identity_fields
from himl_tasks.runs import RunRef
from himl_tasks.snapshot import Snapshot

_SCHEDULE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_\-]{0,63}$")
_SCHEDULE_NAME_RULE = "letters, digits, '_' and '-', starting with a letter, at most 64 characters"


@dataclass(frozen=True)
class StepRun:
    """One step of a submitted pipeline, as the pipeline run has it.

    Attributes:
        step: The step's name (`PipelineStep.name`).
        run: The step's run (a child run of the pipeline run), or None while the step has not
            started, and for good when an upstream step failed or the pipeline was canceled.
        reused_from: For a step that did not run because an earlier run of the same step (the
            same code, settings and input versions) completed: that earlier run, whose outputs
            are the step's outputs. None for a step that ran (or has not started).
    """

    step: str
    run: RunRef | None
    reused_from: RunRef | None = None

    @property
    def reused(self) -> bool:
        """True if the step took an earlier run's outputs instead of running."""
        return self.reused_from is not None


@dataclass(frozen=True)
class PublishedPipeline:
    """A published pipeline: one version of a pipeline kept under its name.

    Attributes:
        name: The pipeline's name (`PipelineSpec.name`): versions share it.
        version: 1 for the first version published under the name, then 2, 3, ...
            Publishing a pipeline equal to the latest version gives that version again.
        id: The workspace's id of this version (AzureML's published pipeline id, ...).
        endpoint: Where others submit it from: a REST endpoint on AzureML, the name of a
            Prefect deployment on the local backend.
        description: What the publisher said about this version.
    """

    name: str
    version: int
    id: str
    endpoint: str
    description: str = ""


def published_digest(
    pipeline: PipelineSpec,
    snapshots: Mapping[str, Snapshot],
    inputs: Iterable[ResolvedDataset] = (),
) -> str:
    """What a published version is compared by: equal for an unchanged pipeline, wherever it is.

    The pipeline's settings; each step's job as a job's identity reads it (paths relative to
    its snapshot, not where the project is: `run_plan.identity_fields`); each step's snapshot
    content; and `inputs`, the dataset versions a backend fixes in the version when it
    publishes it (AzureML v1 does; the local backend and v2 read the latest when it runs).

    Args:
        pipeline: The pipeline.
        snapshots: Each step's snapshot as selected, by step name.
        inputs: The versions the published version reads, if it fixes them.

    Raises:
        InputPathNotFoundError: A snapshot file is gone since it was selected.
    """
    fields = json.loads(pipeline.to_json())
    for step, described in zip(pipeline.steps, fields["steps"], strict=True):
        described["job"] = identity_fields(step.job)
        described["snapshot"] = snapshots[step.name].content_digest()
    fields["inputs"] = sorted(resolved.uri for resolved in inputs)
    return hashlib.sha256(json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()


@dataclass(frozen=True, init=False)
class PipelineSchedule:
    """A schedule that submits a published pipeline on a cron expression.

    Args:
        name: The schedule's name, unique in the workspace: letters, digits, '_' and '-',
            starting with a letter, at most 64 characters.
        pipeline: The published pipeline's name; each firing submits its latest version.
        cron: When it fires: five fields (minute hour day-of-month month day-of-week),
            e.g. "0 2 * * *" for every night at 02:00.
        timezone: The IANA time zone the cron expression is read in (default "UTC").
        active: False for a schedule that is kept but does not fire.
        id: The workspace's id of the schedule ("" before it exists there).

    Raises:
        InvalidInputError: For an unusable name, a cron expression that is not five valid
            fields, or an unknown time zone.
    """

    name: str
    pipeline: str
    cron: str
    timezone: str
    active: bool
    id: str

    def __init__(
        self,
        name: str,
        pipeline: str,
        cron: str,
        *,
        timezone: str = "UTC",
        active: bool = True,
        id: str = "",
    ) -> None:
        if not isinstance(name, str) or not _SCHEDULE_NAME.fullmatch(name):
            raise InvalidInputError(
                f"{name!r} is not a usable schedule name: use {_SCHEDULE_NAME_RULE}"
            )
        if not isinstance(pipeline, str) or not pipeline:
            raise InvalidInputError(
                f"schedule '{name}': pipeline must name a published pipeline, not {pipeline!r}"
            )
        if not isinstance(active, bool):
            raise InvalidInputError(
                f"schedule '{name}': active must be True or False, not {active!r}"
            )
        if not isinstance(id, str):
            raise InvalidInputError(f"schedule '{name}': id must be text, not {id!r}")
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "pipeline", pipeline)
        object.__setattr__(self, "cron", _checked_cron(name, cron))
        object.__setattr__(self, "timezone", _checked_timezone(name, timezone))
        object.__setattr__(self, "active", active)
        object.__setattr__(self, "id", id)


def _checked_cron(schedule: str, cron: object) -> str:
    """The cron expression with single spaces; refuses anything but five valid fields."""
    from cronsim import CronSim, CronSimError

    if not isinstance(cron, str):
        raise InvalidInputError(f"schedule '{schedule}': cron must be text, not {cron!r}")
    fields = cron.split()
    problem = ""
    if len(fields) != 5:
        problem = f"it has {len(fields)} fields"
    else:
        try:
            CronSim(" ".join(fields), datetime.datetime(2026, 1, 1))
        except CronSimError as error:
            problem = str(error)
    if problem:
        raise InvalidInputError(
            f"schedule '{schedule}': {cron!r} is not a cron expression ({problem}): give "
            "five fields, minute hour day-of-month month day-of-week, e.g. '0 2 * * *' for "
            "02:00 every day"
        )
    return " ".join(fields)


def _checked_timezone(schedule: str, timezone: object) -> str:
    import zoneinfo

    try:
        if not isinstance(timezone, str) or not timezone:
            raise ValueError(timezone)
        zoneinfo.ZoneInfo(timezone)
    except (ValueError, zoneinfo.ZoneInfoNotFoundError) as error:
        raise InvalidInputError(
            f"schedule '{schedule}': {timezone!r} is not a time zone: give an IANA name such "
            "as 'UTC' or 'Europe/London'"
        ) from error
    return timezone


def checked_version(version: object) -> int | None:
    """A published version's number as `submit_published_pipeline` is given it, checked.

    Raises:
        InvalidInputError: Not None (the latest) nor a whole number of 1 or more (True, 1.0
            and "2" are refused: each would equal, or name, some version by accident).
    """
    if version is not None and (
        isinstance(version, bool) or not isinstance(version, int) or version < 1
    ):
        raise InvalidInputError(
            f"version must be a published version's number (1, 2, ...) or None for the "
            f"latest, not {version!r}"
        )
    return version
