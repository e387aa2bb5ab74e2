"""Small text files himl-tasks keeps with a run, in its folder of the artifact store.

AzureML keeps a run's command, environment and code, not the himl-tasks description it was
made of (a `JobSpec`, a `PipelineSpec`). Such a description is written, at submission, into
the run's folder of the workspace's artifact store (`ExperimentRun/dcid.<run id>/himl/...`),
through the transfer engine (checksums, temporary names). It lies outside the folders of a
run's files (`outputs/`, `logs/`, ...), so downloads of a run's files never include it.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from himl_tasks.errors import RemoteFilesNotFoundError
from himl_tasks.storage import Datastore

PIPELINE_FILE = "himl/pipeline_spec.json"
"""The `PipelineSpec` a pipeline run was submitted with (or a published version holds)."""


def keep_text(run_files: Datastore, name: str, text: str) -> None:
    """Writes `text` as file `name` ('/'-separated) into the run's folder (`run_files`)."""
    with tempfile.TemporaryDirectory(prefix="himl-kept-") as scratch:
        local = Path(scratch) / name
        local.parent.mkdir(parents=True, exist_ok=True)
        local.write_text(text, encoding="utf-8")
        run_files.upload_files([local], relative_root=scratch, overwrite=True)


def forget_text(run_files: Datastore, name: str) -> None:
    """Removes a kept file (written for a run the service then refused to create)."""
    run_files.delete(name)


def kept_text(run_files: Datastore, name: str) -> str | None:
    """The kept file's text (checksum verified), or None if the run keeps no such file."""
    with tempfile.TemporaryDirectory(prefix="himl-kept-") as scratch:
        try:
            run_files.download(name, scratch, validate_checksum=True)
        except RemoteFilesNotFoundError:
            return None
        return (Path(scratch) / name).read_text(encoding="utf-8", errors="replace")
