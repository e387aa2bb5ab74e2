"""What himl-tasks keeps with a published v1 pipeline and a v1 schedule, in their descriptions.

A published pipeline (`Pipeline.publish(name, description, version)`) keeps free text in its
description and version only; a `Schedule` in its description. So the published pipeline's
description ends with a mark holding the content digest of what was published (the
pipeline's JSON, its steps' snapshot files, the versions of the existing datasets it reads)
and the experiment its runs go to; a publication whose digest equals the latest version's
gives that version again. A schedule's description ends with a mark holding its cron
expression and time zone, which v1's `ScheduleRecurrence` does not keep as written, and
whether it was removed (v1 has no call that deletes a schedule: removing one disables it).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass

from himl_tasks.datasets import ResolvedDataset
from himl_tasks.pipelines import PipelineSpec
from himl_tasks.run_plan import RunPlan

_PUBLISHED = re.compile(
    r"\s*\[himl digest=(?P<digest>[0-9a-f]{64}) experiment=(?P<experiment>\S+)\]$"
)
_SCHEDULE = re.compile(
    r"\s*\[himl cron=(?P<cron>[^;\]]+);tz=(?P<tz>[^;\]]+);(?P<state>kept|removed)\]$"
)


@dataclass(frozen=True)
class PublishedMark:
    """What a published pipeline's description says beyond the publisher's text."""

    description: str
    digest: str
    experiment: str


def pipeline_digest(
    pipeline: PipelineSpec, plans: Sequence[RunPlan], inputs: Sequence[ResolvedDataset]
) -> str:
    """The content digest of a pipeline as it would be published now.

    Raises:
        InputPathNotFoundError: A snapshot file is gone since it was selected.
    """
    digest = hashlib.sha256(pipeline.to_json().encode())
    for plan in plans:
        for item in plan.snapshot.files:
            digest.update(f"\0{plan.snapshot.root}\0{item.relative}\0".encode())
            with plan.snapshot.gone_since_selected(item.relative):
                digest.update((plan.snapshot.root / item.relative).read_bytes())
    for resolved in inputs:
        digest.update(f"\0{resolved.name}:{resolved.version}".encode())
    return digest.hexdigest()


def published_description(description: str, digest: str, experiment: str) -> str:
    """The description a version is published with: the publisher's, then the mark."""
    return f"{description} [himl digest={digest} experiment={experiment}]".lstrip()


def read_published_mark(text: str | None) -> PublishedMark | None:
    """The mark of a description `published_description` wrote, else None."""
    found = _PUBLISHED.search(text or "")
    if found is None:
        return None
    return PublishedMark((text or "")[: found.start()], found["digest"], found["experiment"])


def schedule_description(cron: str, timezone: str, *, removed: bool = False) -> str:
    """A schedule's description: its cron, time zone, and whether it was removed."""
    return f"[himl cron={cron};tz={timezone};{'removed' if removed else 'kept'}]"


def read_schedule_mark(text: str | None) -> tuple[str, str, bool] | None:
    """(cron, time zone, removed) from a description `schedule_description` wrote, else None."""
    found = _SCHEDULE.search(text or "")
    if found is None:
        return None
    return found["cron"], found["tz"], found["state"] == "removed"
