"""Which backend a job runs under, learnt from its environment, and that backend's in-job half.

A backend names its in-job half in the job's `HIML_IN_JOB` variable when it submits the job
(`himl_tasks.backends.<name>.in_job`); the runtime imports that module by name, so it never
imports a backend to find out where it runs. A script in an AzureML run that himl-tasks did not
submit (`AZUREML_RUN_ID` set, no `HIML_IN_JOB`) gets the AzureML SDK v1 half, as before. With
neither variable, the script runs outside any run (a plain `python script.py`).
"""

from __future__ import annotations

import importlib
import os
import re
from pathlib import Path
from typing import Protocol, cast

from himl_tasks import job_variables
from himl_tasks.errors import ConfigurationError
from himl_tasks.runtime.run_context import AzureRunInfo, RunContext

# Only a backend package's `in_job` module may be named: the variable comes from the job's
# environment, and importing an arbitrary module by name would run its code.
_IN_JOB_MODULE = re.compile(r"himl_tasks\.backends\.[a-z][a-z0-9_]*\.in_job")
_SHOWN_CHARACTERS = 200


class InJobPlatform(Protocol):
    """What a backend's in-job half provides, as module-level functions of its `in_job.py`."""

    def run_context(self) -> RunContext:
        """The run this process belongs to."""
        ...

    def run_info(self) -> AzureRunInfo:
        """Where the current run's data is (`get_run_info` sets its `run`)."""
        ...

    def fetch_resumed_checkpoint(self, recovery_id: str, folder: Path) -> None:
        """Puts the latest recovery checkpoint of the run being resumed into `folder`.

        A backend that restored it before the job started does nothing here.
        """
        ...


# Read from the protocol, so that a function added to it is checked for too.
_PLATFORM_FUNCTIONS = tuple(name for name in vars(InJobPlatform) if not name.startswith("_"))


def is_running_in_azure_ml(aml_run: object = None) -> bool:
    """True inside an AzureML run; with a run object, True for a run of AzureML's.

    Without an argument it asks this process (AzureML sets `AZUREML_RUN_ID` in every run).
    With one it answers as hi-ml's `is_running_in_azure_ml(RUN_CONTEXT)`: azureml's `Run` has
    an `experiment` and its offline run (outside AzureML) none; a run object of another
    backend, which names its experiment too, says `runs_on_azureml = False`.

    Args:
        aml_run: A run object, e.g. `RUN_CONTEXT`; default: this process's run.
    """
    if aml_run is None:
        return bool(os.environ.get(job_variables.AZUREML_RUN_ID))
    return hasattr(aml_run, "experiment") and bool(getattr(aml_run, "runs_on_azureml", True))


def in_job_platform() -> InJobPlatform | None:
    """The in-job half of the backend this job runs under, or None outside any run.

    Raises:
        ConfigurationError: If `HIML_IN_JOB` does not name a backend's in-job module.
    """
    name = os.environ.get(job_variables.IN_JOB)
    if not name and is_running_in_azure_ml():
        name = job_variables.AZUREML_V1_IN_JOB
    return load_in_job_platform(name) if name else None


def load_in_job_platform(name: str) -> InJobPlatform:
    """Imports a backend's in-job half by its module name.

    Raises:
        ConfigurationError: If `name` is not `himl_tasks.backends.<backend>.in_job`, there is no
            such module, or it lacks a function of `InJobPlatform`.
    """
    if not _IN_JOB_MODULE.fullmatch(name):
        raise _not_an_in_job_module(name, "only himl_tasks.backends.<backend>.in_job is accepted")
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as error:
        missing = error.name or ""
        if name != missing and not name.startswith(missing + "."):
            raise  # the module exists but a library it needs does not: not a naming problem
        raise _not_an_in_job_module(name, "there is no such module") from error
    lacking = [f for f in _PLATFORM_FUNCTIONS if not callable(getattr(module, f, None))]
    if lacking:
        raise _not_an_in_job_module(name, f"it has no {', '.join(lacking)}")
    return cast(InJobPlatform, module)


def _not_an_in_job_module(name: str, why: str) -> ConfigurationError:
    shown = name if len(name) <= _SHOWN_CHARACTERS else name[:_SHOWN_CHARACTERS] + "..."
    return ConfigurationError(
        f"the environment variable {job_variables.IN_JOB}={shown!r} does not name a backend's "
        f"in-job module ({why}); the backend that submits a job sets it, e.g. to "
        f"{job_variables.LOCAL_IN_JOB!r}. Unset it to run the script outside any run."
    )


def current_run() -> RunContext | None:
    """The run this process belongs to, or None outside any run.

    Raises:
        ConfigurationError: If `HIML_IN_JOB` does not name a backend's in-job module.
    """
    platform = in_job_platform()
    return None if platform is None else platform.run_context()
