"""The object hi-ml's users get for a run, whichever backend it ran on.

hi-ml's functions (`fetch_run`, `get_most_recent_run`, `submit_to_azure_if_needed`'s
`after_submission`) hand users an `azureml.core.Run`. Here each backend decides
(`Backend.run_object`): AzureML v1 gives its azureml `Run` itself, so users' notebooks keep
calling its methods; every other backend gives a `BackendRun`, the members of azureml's `Run`
hi-ml's documentation uses (id, experiment.name, get_status(), get_metrics(), download_files(),
wait_for_completion(), ...), built on the backend's primitives.
"""

from __future__ import annotations

from typing import Any

from himl_tasks.backends.backend_run import BackendRun, RunExperiment
from himl_tasks.backends.base import Backend
from himl_tasks.runs import RunRef

__all__ = ["BackendRun", "RunExperiment", "run_object"]


def run_object(backend: Backend, ref: RunRef) -> Any:
    """The run as hi-ml hands it to users: an azureml `Run` on AzureML v1, else a `BackendRun`.

    Args:
        backend: The backend the run belongs to.
        ref: The run.
    """
    return backend.run_object(ref)
