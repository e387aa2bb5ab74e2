"""Finding the recovery checkpoint a job resumes from, also a resumed run's."""

from __future__ import annotations

import os
from pathlib import Path

from himl_tasks import job_variables
from himl_tasks.checkpoints import latest_recovery_checkpoint
from himl_tasks.runtime.in_job_platform import in_job_platform


def find_latest_recovery_checkpoint(folder: Path | str) -> Path | None:
    """Returns the recovery checkpoint with the highest epoch number in a folder, or None.

    Recovery checkpoints are files whose names start with "recovery" and contain the epoch
    number, e.g. `recovery_epoch=12.ckpt` (hi-ml's and PyTorch Lightning's naming). Files still
    being written by a preempted job are skipped when a temporary name ends them.

    In a job submitted to resume another run (`JobSpec.resume_from`), the resumed run's latest
    checkpoint is found too: the local backend puts it into `outputs/checkpoints/` before the
    job starts; on AzureML it is fetched into `folder` here, when the folder has none.

    Raises:
        ConfigurationError: If `HIML_IN_JOB` does not name a backend's in-job module.
    """
    found = latest_recovery_checkpoint(folder)
    resume_from = os.environ.get(job_variables.RESUME_FROM)
    if found is None and resume_from:
        platform = in_job_platform()
        if platform is not None:
            platform.fetch_resumed_checkpoint(resume_from, Path(folder))
            found = latest_recovery_checkpoint(folder)
    return found
