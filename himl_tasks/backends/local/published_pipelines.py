"""A local workspace's published pipelines: each version a folder that keeps what it runs.

```
<workspace>/published/<pipeline name>/<version>/
    published.json     the record: version, id, content digest, endpoint, description, time
    pipeline.json      the pipeline (`PipelineSpec.to_json`), its steps rooted in steps/
    steps/<step>/      each step's snapshot, as selected when the version was published
```

A published version runs without its project: its steps' snapshots are copied in when it is
published, and never change after. Its content digest (the pipeline's settings, each step's
job with its script relative to its snapshot, and each snapshot's content) tells an unchanged
pipeline, published again, from a changed one. A version appears whole or not at all: it is
written to a folder of its own, then renamed to its number; two publishers racing for one
number are told apart by the rename, and the loser takes the next number.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import secrets
import shutil
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from himl_tasks.backends.local.plan_files import read_versioned_plan
from himl_tasks.errors import ConfigurationError, HimlError, PipelineNotFoundError
from himl_tasks.pipeline_runs import PublishedPipeline, published_digest
from himl_tasks.pipelines import PipelineSpec
from himl_tasks.snapshot import Snapshot, select_snapshot

PUBLISHED_FOLDER = "published"
RECORD_FILE = "published.json"
PUBLISHED_PIPELINE_FILE = "pipeline.json"
STEPS_FOLDER = "steps"
RECORD_VERSION = 1
_RACES = 20  # publishers taking the same number at once, one after another, before giving up


@dataclass(frozen=True)
class PublishedVersion:
    """One published version as the workspace keeps it.

    Attributes:
        published: What the Backend primitives return of it.
        digest: Its content digest.
        folder: Its folder.
    """

    published: PublishedPipeline
    digest: str
    folder: Path

    def pipeline(self) -> PipelineSpec:
        """The pipeline, its steps rooted in this version's snapshots, checked unchanged.

        Raises:
            ConfigurationError: Its pipeline file is missing or damaged, or what it runs (its
                pipeline, a kept snapshot's files) changed since it was published.
        """
        path = self.folder / PUBLISHED_PIPELINE_FILE
        what = f"published pipeline '{self.published.name}' version {self.published.version}"
        try:
            pipeline = rooted(  # where the workspace is now
                PipelineSpec.from_json(path.read_text(encoding="utf-8")), self.folder
            )
            snapshots = {
                step.name: select_snapshot(step.job.snapshot_root) for step in pipeline.steps
            }
            digest = published_digest(pipeline, snapshots)
        except (OSError, UnicodeDecodeError, ValueError, HimlError) as error:
            raise ConfigurationError(
                f"{what}: {self.folder} cannot be read ({type(error).__name__}: {error}); "
                "publish the pipeline again"
            ) from None
        if digest != self.digest:
            # A version is what was published: never other code under its number.
            raise ConfigurationError(
                f"{what}: the files in {self.folder} changed since it was published; publish "
                "the pipeline again (a new version), or submit another version"
            )
        return pipeline

    def intact(self) -> bool:
        """Whether what it runs is still what was published (`pipeline` would give it)."""
        try:
            self.pipeline()
        except ConfigurationError:
            return False
        return True


class PublishedPipelines:
    """The published pipelines of the local workspace at `root`."""

    def __init__(self, root: Path) -> None:
        self.folder = root / PUBLISHED_FOLDER

    def names(self) -> list[str]:
        """The names pipelines are published under, sorted."""
        return list(self.every_version())

    def every_version(self) -> dict[str, list[PublishedVersion]]:
        """Each name pipelines are published under, sorted, with its versions oldest first."""
        if not self.folder.is_dir():
            return {}
        found = {p.name: self.versions(p.name) for p in self.folder.iterdir()}
        return {name: found[name] for name in sorted(found) if found[name]}

    def versions(self, name: str) -> list[PublishedVersion]:
        """The versions published under `name`, oldest first (none for a name never used)."""
        folder = self._folder_of(name)
        if folder is None:
            return []
        numbers = sorted(int(p.name) for p in folder.iterdir() if _is_number(p.name))
        return [self._read(folder / str(number)) for number in numbers]

    def version(self, name: str, version: int | None) -> PublishedVersion:
        """The version `version` (the latest if None) published under `name`.

        Raises:
            PipelineNotFoundError: Nothing is published under `name`, or not that version;
                the message lists what is.
        """
        versions = self.versions(name)
        if not versions:
            published = ", ".join(f"'{n}'" for n in self.names()) or "none"
            raise PipelineNotFoundError(
                f"no pipeline '{name}' is published in the local workspace at "
                f"{self.folder.parent}; published pipelines: {published}. Publish it first "
                "(backend.publish_pipeline(pipeline))"
            )
        if version is None:
            return versions[-1]
        for found in versions:
            if found.published.version == version:
                return found
        numbers = ", ".join(str(v.published.version) for v in versions)
        raise PipelineNotFoundError(
            f"pipeline '{name}' has no version {version} published in the local workspace at "
            f"{self.folder.parent}; its versions are {numbers}"
        )

    def publish(
        self,
        pipeline: PipelineSpec,
        snapshots: Mapping[str, Snapshot],
        *,
        description: str,
        endpoint: str,
    ) -> PublishedPipeline:
        """Keeps the pipeline as its next version, unless the latest is the same pipeline.

        Args:
            pipeline: The pipeline.
            snapshots: Each step's snapshot, selected and checked, by step name.
            description: What the publisher says about this version.
            endpoint: Where the version is submitted from (its Prefect deployment).

        Returns:
            The new version, or the latest one when it has the same content digest.
        """
        digest = published_digest(pipeline, snapshots)
        folder = self.folder / pipeline.name
        for _ in range(_RACES):
            versions = self.versions(pipeline.name)
            if versions and versions[-1].digest == digest and versions[-1].intact():
                return versions[-1].published
            number = versions[-1].published.version + 1 if versions else 1
            published = PublishedPipeline(
                pipeline.name, number, uuid.uuid4().hex, endpoint, description
            )
            if self._write(folder, published, digest, pipeline, snapshots):
                return published
        raise ConfigurationError(  # pragma: no cover - twenty publishers at one moment
            f"pipeline '{pipeline.name}' could not be published: other publishers took "
            f"{_RACES} version numbers in a row while it was written; publish it again"
        )

    def _write(
        self,
        folder: Path,
        published: PublishedPipeline,
        digest: str,
        pipeline: PipelineSpec,
        snapshots: Mapping[str, Snapshot],
    ) -> bool:
        """Writes the version whole, then gives it its number; False if the number was taken."""
        final = folder / str(published.version)
        folder.mkdir(parents=True, exist_ok=True)
        partial = folder / f".publishing-{secrets.token_hex(8)}"
        try:
            for step in pipeline.steps:
                snapshots[step.name].copy_to(partial / STEPS_FOLDER / step.name)
            copied = {
                name: dataclasses.replace(snapshot, root=partial / STEPS_FOLDER / name)
                for name, snapshot in snapshots.items()
            }
            if published_digest(rooted(pipeline, partial), copied) != digest:
                # The version would not be what its digest says (nor what was checked).
                raise ConfigurationError(
                    f"pipeline '{pipeline.name}' was not published: a file of its steps' "
                    "snapshots changed while it was published; publish it again"
                )
            stored = rooted(pipeline, final)
            (partial / PUBLISHED_PIPELINE_FILE).write_text(stored.to_json(), encoding="utf-8")
            record = {
                "version": RECORD_VERSION,
                "published": dataclasses.asdict(published),
                "digest": digest,
                "published_at": datetime.datetime.now(datetime.UTC).isoformat(),
            }
            (partial / RECORD_FILE).write_text(json.dumps(record, indent=2), encoding="utf-8")
            try:
                partial.rename(final)  # refused when another publisher took the number
            except OSError:
                if final.is_dir():
                    return False
                raise
        finally:
            shutil.rmtree(partial, ignore_errors=True)
        return True

    def _folder_of(self, name: str) -> Path | None:
        """The folder of pipeline `name`, found among those there (a name is no path)."""
        if not isinstance(name, str) or not self.folder.is_dir():
            return None
        for path in self.folder.iterdir():
            if path.name == name and path.is_dir():
                return path
        return None

    def _read(self, folder: Path) -> PublishedVersion:
        path = folder / RECORD_FILE
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise ConfigurationError(
                f"the published pipeline version in {folder} has no readable record {path} "
                f"({type(error).__name__}); remove the folder {folder}, then publish the "
                "pipeline again"
            ) from None

        def build(fields: dict[str, Any]) -> PublishedVersion:
            return PublishedVersion(
                PublishedPipeline(**fields["published"]), str(fields["digest"]), folder
            )

        return read_versioned_plan(
            text,
            what=f"the record of the published pipeline version in {folder}",
            version=RECORD_VERSION,
            remedy=f"remove the folder {folder}, then publish the pipeline again",
            build=build,
        )


def rooted(pipeline: PipelineSpec, folder: Path) -> PipelineSpec:
    """The pipeline with each step's snapshot root `<folder>/steps/<step>`, script kept within."""
    return dataclasses.replace(
        pipeline,
        steps=tuple(
            dataclasses.replace(
                step, job=step.job.with_snapshot_at(folder / STEPS_FOLDER / step.name)
            )
            for step in pipeline.steps
        ),
    )


def _is_number(name: str) -> bool:
    """Whether a folder's name is a version number (ASCII digits: `str.isdigit` takes '²')."""
    return name.isascii() and name.isdigit()
