"""The pipelines himl-tasks published on AzureML v1, and what it keeps with each.

A published pipeline (`Pipeline.publish(name, description, version)`) keeps free text in its
description and version only. So its version is himl-tasks' (1, 2, ...), and its description
ends with a mark holding the content digest of what was published (the pipeline's JSON, its
steps' snapshot files, the versions of the existing datasets it reads) and the experiment its
runs go to: a publication whose digest equals the latest version's gives that version again.
The versions of a name live under the `PipelineEndpoint` of that name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from himl_tasks.backends.azureml_v1.service import AzureMLService
from himl_tasks.errors import PipelineNotFoundError

_PUBLISHED = re.compile(
    r"\s*\[himl digest=(?P<digest>[0-9a-f]{64}) experiment=(?P<experiment>\S+)\]$"
)


@dataclass(frozen=True)
class PublishedMark:
    """What a published pipeline's description says beyond the publisher's text."""

    description: str
    digest: str
    experiment: str


def published_description(description: str, digest: str, experiment: str) -> str:
    """The description a version is published with: the publisher's, then the mark."""
    return f"{description} [himl digest={digest} experiment={experiment}]".lstrip()


def read_published_mark(text: str | None) -> PublishedMark | None:
    """The mark of a description `published_description` wrote, else None."""
    found = _PUBLISHED.search(text or "")
    if found is None:
        return None
    return PublishedMark((text or "")[: found.start()], found["digest"], found["experiment"])


def endpoint_named(service: AzureMLService, name: str) -> Any:
    """The pipeline endpoint of that name.

    Raises:
        PipelineNotFoundError: There is none.
    """
    endpoints = service.pipeline_endpoints()
    endpoint = next((e for e in endpoints if e.name == name), None)
    if endpoint is None:
        names = ", ".join(sorted(e.name for e in endpoints)) or "none"
        raise PipelineNotFoundError(
            f"nothing is published under pipeline name '{name}' in workspace "
            f"'{service.workspace.name}' (published pipelines: {names}): publish it first "
            "(publish_pipeline)"
        )
    return endpoint


def published_versions(service: AzureMLService, name: str) -> list[tuple[Any, PublishedMark]]:
    """The versions himl-tasks published under `name`, oldest first, with their marks."""
    endpoint = next((e for e in service.pipeline_endpoints() if e.name == name), None)
    if endpoint is None:
        return []
    found = []
    for published in endpoint.list_pipelines(active_only=False):
        mark = read_published_mark(published.description)
        if mark is not None and str(published.version).isdigit():
            found.append((published, mark))
    return sorted(found, key=lambda item: int(item[0].version))


def published_version(
    service: AzureMLService, name: str, version: int | None, workspace: str
) -> tuple[Any, PublishedMark]:
    """The published version `version` of `name` (the latest for None), with its mark.

    Raises:
        PipelineNotFoundError: Nothing published under that name, or not that version.
    """
    published = published_versions(service, name)
    chosen = [p for p in published if version is None or int(p[0].version) == version]
    if not chosen:
        if published:
            known = f"its versions: {', '.join(p[0].version for p in published)}"
        else:
            names = sorted(e.name for e in service.pipeline_endpoints())
            known = f"published pipelines: {', '.join(names) or 'none'}"
        raise PipelineNotFoundError(
            f"no published pipeline '{name}'"
            + ("" if version is None else f" version {version}")
            + f" in workspace '{workspace}' ({known}): publish it with "
            "publish_pipeline, or give a published name and version"
        )
    return chosen[-1]
