"""Downloading a run's checkpoints, the same way on every backend and inside distributed jobs."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from himl_tasks.backends.base import Backend
from himl_tasks.checkpoints import DEFAULT_CHECKPOINT_FOLDER, latest_recovery_checkpoint
from himl_tasks.runs import RunRef
from himl_tasks.runtime import is_local_rank_zero, torch_barrier
from himl_tasks.storage import TransferReport


def download_checkpoints(
    backend: Backend,
    ref: RunRef,
    destination: Path,
    *,
    checkpoint_folder: str = DEFAULT_CHECKPOINT_FOLDER,
) -> TransferReport | None:
    """Downloads a run's checkpoints into `destination`, always checking their MD5s.

    Files keep their names in the run (`outputs/checkpoints/...`). Inside a distributed job
    only the first process on each node downloads, and every process waits at a barrier until
    it is done, so that all of them find the files afterwards.

    Returns:
        The transfer's report, or None in processes that did not download.

    Raises:
        RemoteFilesNotFoundError: If the run has no files under `checkpoint_folder`.
        ChecksumMismatchError: If a file's bytes do not match its stored MD5.
    """
    report = None
    if is_local_rank_zero():
        prefix = checkpoint_folder.rstrip("/") + "/"
        report = backend.download_files(ref, prefix, destination, validate_checksum=True)
    torch_barrier()
    return report


def fetch_latest_recovery_checkpoint(backend: Backend, recovery_id: str, folder: Path) -> None:
    """Copies the latest recovery checkpoint of the run `recovery_id` into `folder`.

    What an AzureML job resubmitted with `resume_from` does before it starts (both SDKs' in-job
    halves): the lost run's checkpoints come from its files through the transfer engine with
    checksums, on local rank 0 (the others wait at a barrier), into a scratch folder; only the
    latest is kept. `folder` inside the job's working folder names the run's checkpoint folder.
    """
    try:
        prefix = folder.absolute().relative_to(Path.cwd()).as_posix()
    except ValueError:
        prefix = DEFAULT_CHECKPOINT_FOLDER
    with tempfile.TemporaryDirectory(prefix="himl-resume-") as scratch:
        download_checkpoints(
            backend, backend.get_run_ref(recovery_id), Path(scratch), checkpoint_folder=prefix
        )
        latest = latest_recovery_checkpoint(Path(scratch) / prefix)
        if latest is not None and is_local_rank_zero():
            folder.mkdir(parents=True, exist_ok=True)
            shutil.copy2(latest, folder / latest.name)
