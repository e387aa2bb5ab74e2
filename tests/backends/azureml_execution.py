"""The stand-in's compute: a submitted AzureML v1 job really runs, as a subprocess.

What AzureML's compute does with a `ScriptRunConfig`, and where each behaviour comes from:
- the snapshot is copied into a fresh working folder, the process's current folder
  (`/mnt/azureml/cr/j/<job>/exe/wd` on AzureML compute; "Where to save and write files",
  how-to-save-write-experiment-files, Azure Machine Learning docs v1);
- the script runs in the job's interpreter through AzureML's wrapper
  (`context_manager_injector.py`; here tests/backends/azureml_job_launcher.py) with the run
  configuration's `arguments`, and sees the run configuration's `environment_variables` plus
  the ones `Run.get_context()` reads (`AZUREML_RUN_ID`, `AZUREML_ARM_SUBSCRIPTION`,
  `AZUREML_ARM_RESOURCEGROUP`, `AZUREML_ARM_WORKSPACE_NAME`, `AZUREML_ARM_PROJECT_NAME`:
  azureml/core/run.py, `Run._load_scope`; azureml/_run_impl/constants.py);
- each input `INPUT_i` consumed `as_download` is downloaded, one `as_mount` is read through a
  mount (here: copied), into a folder named in `run.input_datasets`; each output
  `OUTPUT_i` is a local folder named in `run.output_datasets`, uploaded to its destination
  (`{run-id}` replaced by the run's id) when the job ends (`OutputFileDatasetConfig`,
  azureml/data/output_dataset_config.py);
- stdout and stderr are the driver log (`azureml-logs/70_driver_log.txt`, and
  `user_logs/std_log.txt` on current compute), uploaded as it grows; `outputs/` and `logs/`
  of the working folder become run files when the job ends (the docs above: "outputs" and
  "logs" are the two folders AzureML uploads);
- a script that exits with a non-zero code fails the run with the service's "user process
  exited" error naming the exception (the payload SCRIPT_ERROR in azureml_service.py);
- `max_run_duration_seconds` ends the job (RunConfiguration's docstring: "the system will
  attempt to automatically cancel the run if it took longer than this value").
"""

from __future__ import annotations

import itertools
import json
import math
import random
import re
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tests.backends import azureml_job_launcher
from tests.backends.job_process import (
    JobProcess,
    copy_files,
    has_files,
    inherited_environment,
    utc_now,
)

if TYPE_CHECKING:
    from tests.backends.azureml_service import FakeAzureMLService

__all__ = ["ExecutedJob", "copy_files", "dataset_location", "sampled_arguments", "utc_now"]

LAUNCHER = Path(azureml_job_launcher.__file__)
LOG_NAMES = ("azureml-logs/70_driver_log.txt", "user_logs/std_log.txt")
_PATTERN = re.compile(r"azureml://subscriptions/[^/]+/resourcegroups/[^/]+/workspaces/[^/]+/"
                      r"datastores/(?P<datastore>[^/]+)/paths/(?P<path>.*)")  # fmt: skip


class ExecutedJob(JobProcess):
    """One run's process on the stand-in's compute, and the files around it."""

    def __init__(
        self,
        service: FakeAzureMLService,
        run_id: str,
        experiment: str,
        config: Any,
        snapshot_root: Path,
        snapshot: list[str],
        extra_arguments: tuple[str, ...] = (),
    ) -> None:
        super().__init__(service.compute_root / run_id, snapshot_root, snapshot)
        self.service = service
        self.run_id = run_id
        self.experiment = experiment
        self.config = config
        self.record_file = self.folder / "record.jsonl"
        self.staged_files = self.folder / "run-files"
        self.output_folders: dict[str, Path] = {}
        self.staged_files.mkdir(parents=True, exist_ok=True)
        self.record_file.touch()
        self.arguments = [*(str(a) for a in (config.arguments or [])), *extra_arguments]

    # ---- starting -------------------------------------------------------------------------

    def start(self) -> None:
        """Fetches the inputs, prepares the outputs and starts the script's process."""
        run_config = self.config.run_config
        inputs = {
            name: str(self._fetch_input(name, consumption))
            for name, consumption in (run_config.data or {}).items()
        }
        for name, output in (run_config.output_data or {}).items():
            folder = self._compute_path(output.source) if output.source else self.folder / name
            folder.mkdir(parents=True, exist_ok=True)
            self.output_folders[name] = folder
        workspace = self.service.workspace
        control = {
            "run_id": self.run_id,
            "experiment": self.experiment,
            "workspace": {
                "name": workspace.name,
                "subscription_id": workspace.subscription_id,
                "resource_group": workspace.resource_group,
            },
            "input_datasets": inputs,
            "output_datasets": {name: str(path) for name, path in self.output_folders.items()},
            "record_file": str(self.record_file),
            "staged_files": str(self.staged_files),
            **self._job_side_workspace(),
        }
        control_file = self.folder / "job.json"
        control_file.write_text(json.dumps(control), encoding="utf-8")
        script = self.config.script
        if not script:
            raise NotImplementedError("the stand-in executes script jobs only, not commands")
        command = [sys.executable, str(LAUNCHER), script, *self.arguments]
        self.launch(command, self._environment(control_file), run_config.max_run_duration_seconds)

    def _job_side_workspace(self) -> dict[str, Any]:
        """What the job is told of its workspace beyond its run, for `Run.get_context()
        .experiment.workspace` as the in-job half uses it (a resumed job fetches its
        predecessor's checkpoint from the artifact store): the artifact store's container and
        key (a real job reaches them through the service with its run's token) and the
        workspace's runs so far, by id, with their experiments."""
        artifacts = self.service.datastores["workspaceartifactstore"]
        return {
            "artifact_store": {
                "account_url": self.service.azurite.account_url,
                "account_name": artifacts.account_name,
                "account_key": artifacts.account_key,
                "container": artifacts.container_name,
            },
            "runs": {run.id: run.experiment.name for run in self.service.runs.values()},
        }

    def _environment(self, control_file: Path) -> dict[str, str]:
        # A compute node has none of the submitter's himl-tasks or AzureML variables.
        inherited = inherited_environment()
        workspace = self.service.workspace
        return {
            **inherited,
            **{k: str(v) for k, v in (self.config.run_config.environment_variables or {}).items()},
            # What Run.get_context() reads (azureml/core/run.py, Run._load_scope).
            "AZUREML_RUN_ID": self.run_id,
            "AZUREML_ARM_SUBSCRIPTION": workspace.subscription_id,
            "AZUREML_ARM_RESOURCEGROUP": workspace.resource_group,
            "AZUREML_ARM_WORKSPACE_NAME": workspace.name,
            "AZUREML_ARM_PROJECT_NAME": self.experiment,
            azureml_job_launcher.CONTROL_FILE: str(control_file),
        }

    def _compute_path(self, path: str) -> Path:
        """A path on the compute node.

        Relative paths are in the working folder; absolute ones are kept under this job's
        folder, never written at that place on the test machine.
        """
        if path.startswith("/"):
            return self.folder / "node" / path.lstrip("/")
        return self.working_folder / path

    def _fetch_input(self, name: str, consumption: Any) -> Path:
        """Downloads (or, for a mount, copies) an input's files into its folder."""
        datastore, folder = dataset_location(consumption.dataset)
        target = (
            self._compute_path(consumption.path_on_compute)
            if consumption.path_on_compute
            else self.folder / "inputs" / name
        )
        scratch = self.folder / "downloads" / name
        self.service.store(datastore).download(folder + "/", scratch)
        target.parent.mkdir(parents=True, exist_ok=True)
        downloaded = scratch / folder
        if downloaded.is_dir():
            shutil.move(downloaded, target)
        else:
            target.mkdir(parents=True, exist_ok=True)
        return target

    # ---- while it runs --------------------------------------------------------------------

    def upload_log(self) -> None:
        """Writes the driver log to the run's files when it grew since the last upload."""
        data = self.grown_log()
        if data is None:
            return
        for name in LOG_NAMES:
            self.service.write_run_file(self.run_id, name, data)

    # ---- when it has ended ----------------------------------------------------------------

    def upload_results(self, *, outputs: bool) -> None:
        """Uploads what an ended job leaves: the final log, `outputs/`, `logs/`, staged files.

        With `outputs`, the output datasets' folders go to their destinations too.
        """
        self.upload_log()
        prefix = f"ExperimentRun/dcid.{self.run_id}"
        artifacts = self.service.store("workspaceartifactstore")
        for name in ("outputs", "logs"):
            if has_files(self.working_folder / name):
                artifacts.upload_folder(self.working_folder / name, f"{prefix}/{name}")
        if has_files(self.staged_files):
            artifacts.upload_folder(self.staged_files, prefix, overwrite=True)
        if not outputs:
            return
        for name, folder in self.output_folders.items():
            output = self.config.run_config.output_data[name]
            datastore, destination = output.destination
            path = destination.replace("{run-id}", self.run_id).rstrip("/")
            if has_files(folder):
                self.service.store(datastore.name).upload_folder(folder, path)

    def error(self) -> dict[str, Any]:
        """The error of a failed run, in the shape of the service's SCRIPT_ERROR."""
        # Only a script's non-zero exit gets here: a job past its max_run_duration_seconds
        # ends Canceled (the service's _advance), which has no error payload.
        message = self.exit_message()
        return {"error": {"code": "UserError", "message": message}}

    def metrics(self) -> dict[str, Any]:
        """What the job logged, in the shape of `Run.get_metrics()`.

        As azureml-core 1.61 reads metrics back (v2 metrics, the default:
        `InlineMetric.get_cells_from_metric_v2_dto` in azureml/core/_metrics.py, whose
        docstring says: "table with single row -> dictionary<string, object>; table with
        multiple rows -> dictionary<string, list<object>>; scalar with single row -> object;
        scalar with multiple rows -> list<object>"): a name logged once is its value, logged
        again (or by log_list) a list; a table (log_row, log_table) is {column: value} for
        one row, {column: [values]} for several. An image's value is its artifact location
        (`ArtifactBackedMetric._build_artifact_uri`).
        """
        found: dict[str, Any] = {}
        for entry in self._records():
            kind, name, value = entry["kind"], entry["name"], entry["value"]
            if kind in ("scalar", "image"):
                _add_cell(found, name, value)
            elif kind == "list":
                for item in value:
                    _add_cell(found, name, item)
            elif kind in ("row", "table"):
                table = found.setdefault(name, {})
                rows = [value] if kind == "row" else _rows(value)
                for row in rows:
                    for column, cell in row.items():
                        _add_cell(table, column, cell)
        return found

    def tags(self) -> dict[str, str]:
        """The tags the job set on its run."""
        tags: dict[str, str] = {}
        for entry in self._records():
            if entry["kind"] == "tags":
                tags.update(entry["value"])
        return tags

    def _records(self) -> list[dict[str, Any]]:
        text = self.record_file.read_text(encoding="utf-8") if self.record_file.exists() else ""
        # A line still being written (no newline yet) is read at the next look.
        return [json.loads(line) for line in text.splitlines(keepends=True) if line.endswith("\n")]


def dataset_location(dataset: Any) -> tuple[str, str]:
    """The (datastore, folder) of a file dataset built from `(datastore, "folder/**")`.

    Read from the dataset's definition (its mltable paths, `azureml://.../datastores/<name>/
    paths/<path>`), as the data runtime reads it on the compute node.
    """
    paths = dataset._dataflow._to_yaml_dict()["paths"]
    found = _PATTERN.fullmatch(paths[0]["pattern"])
    if len(paths) != 1 or found is None:
        raise NotImplementedError(f"the stand-in reads datasets of one datastore folder: {paths}")
    return found["datastore"], found["path"].removesuffix("**").rstrip("/")


def _add_cell(found: dict[str, Any], name: str, value: Any) -> None:
    if name not in found:
        found[name] = value
    elif isinstance(found[name], list):
        found[name].append(value)
    else:
        found[name] = [found[name], value]


def _rows(table: dict[str, list[Any]]) -> list[dict[str, Any]]:
    length = max((len(cells) for cells in table.values()), default=0)
    return [{column: cells[i] for column, cells in table.items()} for i in range(length)]


def sampled_arguments(hyperdrive: Any) -> list[list[str]]:
    """The trials' extra arguments of a `HyperDriveConfig`: `<name> <value>` per parameter.

    Read from the sampling the config holds (`_generator_config`, the sampling object's
    `to_json()`: {"name": "GRID" | "RANDOM" | ..., "parameter_space": {name: [kind, args]},
    "properties": {...}}; azureml/train/hyperdrive/sampling.py and parameter_expressions.py).
    Parameter names are passed as written (AzureML's own examples name them "--lr"). Grid
    sampling takes every combination, in order; random (and Bayesian, not modelled further)
    draws with `random.Random(rngseed)` (the sampling's `rngseed` property, else 0). At most
    `max_total_runs` trials.
    """
    generator = hyperdrive._generator_config
    space: dict[str, list[Any]] = generator["parameter_space"]
    limit = int(hyperdrive._max_total_runs)
    names = list(space)
    if generator["name"] == "GRID":
        values = [space[name][1][0] for name in names]  # grid takes choice() only
        draws = [dict(zip(names, combo, strict=True)) for combo in itertools.product(*values)]
    else:
        rng = random.Random((generator.get("properties") or {}).get("rngseed", 0))
        draws = [{name: _draw(space[name], rng) for name in names} for _ in range(limit)]
    return [[part for name, value in draw.items() for part in (name, str(value))]
            for draw in draws[:limit]]  # fmt: skip


def _draw(expression: list[Any], rng: random.Random) -> Any:
    kind, args = expression
    if kind == "choice":
        return rng.choice(args[0])
    if kind == "randint":
        return rng.randrange(args[0])
    if kind == "uniform":
        return rng.uniform(args[0], args[1])
    if kind == "loguniform":  # bounds are exponents (parameter_expressions.loguniform)
        return math.exp(rng.uniform(args[0], args[1]))
    if kind == "quniform":
        return round(rng.uniform(args[0], args[1]) / args[2]) * args[2]
    if kind == "normal":
        return rng.gauss(args[0], args[1])
    if kind == "lognormal":
        return math.exp(rng.gauss(args[0], args[1]))
    raise NotImplementedError(f"the stand-in does not sample '{kind}'")
