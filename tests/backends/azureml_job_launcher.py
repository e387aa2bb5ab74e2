"""The job side of the AzureML stand-in: what AzureML's wrapper does on its compute.

AzureML v1 does not start the user's script directly: its driver runs
`azureml-setup/context_manager_injector.py`, which sets up the run's context and then runs
the script as `__main__` with the run configuration's arguments (the driver log says
"Entering context manager injector" before the script's own output: MicrosoftLearning/DP100
issue 37). The stand-in starts this module the same way, as
`python azureml_job_launcher.py <script> <arguments...>` in the run's working folder: it makes
`azureml.core.Run.get_context()` return the job's run (`JobRun`) and runs the script with
runpy. The service half (tests/backends/azureml_execution.py) tells it about the run through
a JSON file named by `HIML_STANDIN_JOB`, and reads back what the job logged from a JSON-lines
file beside it.

The in-job half's `current_workspace_backend` (through which a resumed job fetches its
predecessor's checkpoint) is an `AzureMLV1Backend` on `JobSideService`: the workspace's
artifact store and runs as the stand-in described them in the control file (a real job
reaches them through the service with its run's token).

This module runs in the job's process and imports nothing from the tests package (which is
not on the job's path), and azureml only when the script does.
"""

from __future__ import annotations

import importlib.abc
import json
import os
import runpy
import shutil
import sys
import time
from collections.abc import Sequence
from inspect import isgeneratorfunction
from pathlib import Path
from types import GeneratorType, ModuleType
from typing import Any

CONTROL_FILE = "HIML_STANDIN_JOB"
"""The variable naming the job's control file (written by the stand-in, test-only)."""
ARTIFACT_DATASTORE = "workspaceartifactstore"


class JobWorkspace:
    """The workspace as `run.experiment.workspace` shows it inside a job."""

    def __init__(self, name: str, subscription_id: str, resource_group: str) -> None:
        self.name = name
        self.subscription_id = subscription_id
        self.resource_group = resource_group


class JobExperiment:
    """The experiment as `run.experiment` shows it inside a job."""

    def __init__(self, name: str, workspace: JobWorkspace) -> None:
        self.name = name
        self.workspace = workspace


class JobRun:
    """What `Run.get_context()` returns inside the job.

    It has the members of azureml-core 1.61's `Run` that hi-ml scripts use, with its
    signatures (azureml/core/run.py).

    Metrics, tags and files go to the stand-in: each call appends one JSON line to the run's
    record file (the service folds them into `get_metrics()`'s shape); uploaded files and
    images are staged in a folder the service uploads as run files when the process ends.
    """

    def __init__(self, control: dict[str, Any]) -> None:
        self.id: str = control["run_id"]
        self.experiment = JobExperiment(control["experiment"], JobWorkspace(**control["workspace"]))
        # Run.input_datasets / output_datasets: {name: the path on the compute node} for
        # datasets consumed as_download / as_mount and OutputFileDatasetConfigs.
        self.input_datasets: dict[str, str] = dict(control["input_datasets"])
        self.output_datasets: dict[str, str] = dict(control["output_datasets"])
        self._record_file = Path(control["record_file"])
        self._staged_files = Path(control["staged_files"])
        self._tags: dict[str, Any] = {}

    def __repr__(self) -> str:
        return f"Run(Experiment: {self.experiment.name}, Id: {self.id}, Type: azureml.scriptrun)"

    # ---- metrics (azureml/core/run.py: log, log_list, log_row, log_table, log_image) -------

    def log(self, name: str, value: Any, description: str = "", step: int | None = None) -> None:
        """Logs a scalar; logged again under the same name, the metric becomes a list."""
        if isinstance(value, (list, range, GeneratorType)) or isgeneratorfunction(value):
            # azureml/core/run.py, Run.log: the same test, the same exception and words. The
            # job imported azureml to get this run (Run.get_context), so this costs nothing.
            from azureml.exceptions import UserErrorException

            raise UserErrorException("run.log does not support list type. Use run.log_list instead")
        self._record("scalar", name, value, step=step)

    def log_list(self, name: str, value: Sequence[Any], description: str = "") -> None:
        """Logs a list of values under one name."""
        self._record("list", name, list(value))

    def log_row(self, name: str, description: str | None = None, **kwargs: Any) -> None:
        """Logs one row of a table metric; its columns are the keyword arguments."""
        self._record("row", name, kwargs)

    def log_table(self, name: str, value: dict[str, Sequence[Any]], description: str = "") -> None:
        """Logs a table metric: {column: values}."""
        self._record("table", name, {column: list(cells) for column, cells in value.items()})

    def log_image(
        self, name: str, path: str | None = None, plot: Any = None, description: str = ""
    ) -> None:
        """Logs an image file, or a matplotlib plot, as an image metric and a run file.

        As azureml's `ImageMetric` does: a file is uploaded under the path it was given, a plot
        as `<name>_<seconds>.png`; the metric's value is the artifact's location.
        """
        if (path is None) == (plot is None):
            # azureml/_run_impl/run_history_facade.py, log_image: exactly one of path and plot,
            # else an AzureMLException (TwoInvalidParameter / TwoInvalidArgument).
            from azureml.exceptions import AzureMLException

            raise AzureMLException("log_image takes exactly one of 'path' and 'plot'")
        if path is not None:
            artifact = _artifact_name(Path(path))
            self._stage(artifact).write_bytes(Path(path).read_bytes())
        else:
            artifact = f"{name}_{int(time.time())}.png"
            plot.savefig(self._stage(artifact), format="png")
        location = f"aml://artifactId/ExperimentRun/dcid.{self.id}/{artifact}"
        self._record("image", name, location)

    def flush(self, timeout_seconds: int = 300) -> None:
        """Every value is written as it is logged: nothing is pending."""

    def complete(self, _set_status: bool = True) -> None:
        """AzureML's wrapper completes the run when the script ends; nothing to do here."""

    def get_status(self) -> str:
        return "Running"

    # ---- tags and files -------------------------------------------------------------------

    def tag(self, key: str, value: Any = None) -> None:
        self.set_tags({key: "" if value is None else value})

    def set_tags(self, tags: dict[str, Any]) -> None:
        self._tags.update(tags)
        self._record("tags", "", {key: str(value) for key, value in tags.items()})

    def get_tags(self) -> dict[str, Any]:
        return dict(self._tags)

    def upload_file(
        self, name: str, path_or_stream: Any, datastore_name: str | None = None
    ) -> None:
        """Adds a file to the run's files under `name`."""
        target = self._stage(name)
        if isinstance(path_or_stream, (str, os.PathLike)):
            shutil.copyfile(path_or_stream, target)
        else:
            target.write_bytes(path_or_stream.read())

    # ---- the record -----------------------------------------------------------------------

    def _record(self, kind: str, name: str, value: Any, **extra: Any) -> None:
        line = json.dumps({"kind": kind, "name": name, "value": value, **extra}, default=_plain)
        with self._record_file.open("a", encoding="utf-8") as record:
            record.write(line + "\n")

    def _stage(self, name: str) -> Path:
        target = self._staged_files / name
        target.parent.mkdir(parents=True, exist_ok=True)
        return target


def _artifact_name(path: Path) -> str:
    """The run file name of an uploaded image: its path as given, relative to the job's folder."""
    if path.is_absolute():
        try:
            return path.relative_to(Path.cwd()).as_posix()
        except ValueError:
            return path.name
    return path.as_posix()


def _plain(value: Any) -> Any:
    """numpy / torch scalars as Python numbers; anything else as text (as the service shows it)."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)


class _InstallOnImport(importlib.abc.MetaPathFinder):
    """Patches `azureml.core.run.Run.get_context` as soon as the script imports azureml.

    Importing azureml-core takes about 1.5 s: a script that never uses it does not pay for it.
    """

    def __init__(self, run: JobRun) -> None:
        self.run = run

    def find_spec(self, fullname: str, path: Any, target: ModuleType | None = None) -> Any:
        if fullname != "azureml.core.run":
            return None
        others = [f for f in sys.meta_path if f is not self and hasattr(f, "find_spec")]
        spec = next((found for f in others if (found := f.find_spec(fullname, path, target))), None)
        if spec is None or spec.loader is None:
            return None
        spec.loader.exec_module = _installing_after(  # type: ignore[method-assign]
            spec.loader.exec_module, self.run
        )
        return spec


def _installing_after(exec_module: Any, run: JobRun) -> Any:
    """The loader's `exec_module`, then `_install` on the module it has just run."""

    def run_then_install(module: ModuleType) -> None:
        exec_module(module)
        _install(module, run)

    return run_then_install


def _install(run_module: ModuleType, run: JobRun) -> None:
    def get_context(
        cls: Any,
        /,
        allow_offline: bool = True,
        used_for_context_manager: bool = False,
        **kwargs: Any,
    ) -> JobRun:
        return run

    run_module.Run.get_context = classmethod(get_context)


class JobSideService:
    """The part of the v1 service a job reaches from inside: its workspace's artifact store
    and its runs (`Run.get(workspace, run_id)`), as the stand-in described them."""

    def __init__(self, control: dict[str, Any]) -> None:
        self.control = control
        self.workspace = JobWorkspace(**control["workspace"])

    def datastore(self, name: str) -> Any:
        from azureml.core import Workspace
        from azureml.data.azure_storage_datastore import AzureBlobDatastore

        from himl_tasks.errors import DatastoreNotFoundError

        if name != ARTIFACT_DATASTORE:
            raise DatastoreNotFoundError(
                f"the stand-in's job side knows only the datastore '{ARTIFACT_DATASTORE}'"
            )
        store = self.control["artifact_store"]
        workspace = Workspace(
            self.workspace.subscription_id,
            self.workspace.resource_group,
            self.workspace.name,
            auth=object(),
            _disable_service_check=True,
        )
        return AzureBlobDatastore(
            workspace,
            name,
            store["container"],
            store["account_name"],
            account_key=store["account_key"],
            protocol="http",
            endpoint="core.windows.net",
        )

    def run(self, run_id: str) -> Any:
        from himl_tasks.errors import RunNotFoundError

        experiment = self.control["runs"].get(run_id)
        if experiment is None:
            raise RunNotFoundError(f"no run '{run_id}' in workspace '{self.workspace.name}'")
        return JobSideRun(run_id, JobExperiment(experiment, self.workspace))

    def __getattr__(self, name: str) -> Any:
        raise NotImplementedError(f"the stand-in's job side does not answer {name}")


class JobSideRun:
    """Another run of the workspace, as the job side sees it: its id and experiment."""

    def __init__(self, run_id: str, experiment: JobExperiment) -> None:
        self.id = run_id
        self.experiment = experiment

    def get_portal_url(self) -> str:
        return ""


def workspace_backend(control: dict[str, Any]) -> Any:
    """The v1 backend a job's in-job half uses, on the stand-in's artifact store."""
    from himl_tasks.backends.azureml_v1 import AzureMLV1Backend

    store = control["artifact_store"]
    return AzureMLV1Backend(
        service=JobSideService(control),  # type: ignore[arg-type]
        account_urls={store["account_name"]: store["account_url"]},
    )


def main(argv: Sequence[str]) -> None:
    """Runs `argv[0]` (the script, relative to the working folder) as `__main__`."""
    from himl_tasks.backends.azureml_v1 import in_job

    control = json.loads(Path(os.environ[CONTROL_FILE]).read_text(encoding="utf-8"))
    in_job.current_workspace_backend = lambda: workspace_backend(control)
    run = JobRun(control)
    if "azureml.core.run" in sys.modules:
        _install(sys.modules["azureml.core.run"], run)
    else:
        sys.meta_path.insert(0, _InstallOnImport(run))
    script, *arguments = argv
    sys.argv = [script, *arguments]
    # What `python script.py` does: the script's own folder first on the path (not ours).
    sys.path[0] = str(Path(script).resolve().parent)
    runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
    main(sys.argv[1:])
