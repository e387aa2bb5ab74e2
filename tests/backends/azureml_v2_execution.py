"""The v2 stand-in's compute: a submitted AzureML v2 command job really runs, as a subprocess.

`ExecutingAzureMLV2Service` is the service stand-in of tests/backends/azureml_v2_service.py
whose jobs execute instead of following a scripted `Outcome`. What AzureML's compute does with
a v2 command job, and where each behaviour comes from:

- the code snapshot (taken at submission with `.amlignore`) is the working folder, with
  `outputs/` and `logs/` in it (tests/backends/job_process.py);
- each `uri_folder` input is downloaded into a folder of its own (`download`; a `ro_mount` is
  read through a mount, here a copy), found from the input's `azureml://datastores/<name>/
  paths/<folder>` or, for a data asset `azureml:<name>:<version>`, from the asset's path; each
  output is a local folder, uploaded to its path (`${{name}}` replaced by the job's name,
  azure/ai/ml/entities/_inputs_outputs/output.py) when the job completes, and only then
  registered as its data asset's next version (the base stand-in's `register_outputs`);
- the job's command runs with `${{inputs.<name>}}` / `${{outputs.<name>}}` replaced by those
  folders ("CLI (v2) command job YAML schema", Azure Machine Learning docs: "the command can
  reference inputs and outputs with ${{inputs.<name>}}"), and sees its
  `environment_variables` plus the variables AzureML sets in a v2 job: `AZURE_ML_INPUT_<name>`
  and `AZURE_ML_OUTPUT_<name>` (azure-ai-ml's `INPUT_BINDING_PREFIX`,
  azure/ai/ml/entities/_job/parameterized_command.py; hi-ml 0.5 reads them), `AZUREML_RUN_ID`
  and `AZUREML_ARM_*` (what azure-ai-ml reads inside a job:
  azure/ai/ml/identity/_credentials/_AzureMLSparkOnBehalfOfCredential.py), and
  `MLFLOW_TRACKING_URI` / `MLFLOW_RUN_ID` (the workspace's MLflow server, here the stand-in's
  real SQLite store, and the job's run: Azure/azure-sdk-for-python issue 38813);
- stdout and stderr are `user_logs/std_log.txt` in the artifact store
  (`ExperimentRun/dcid.<name>/`), uploaded as it grows, and so is `logs/` (TensorBoard's
  event files, for `himl-tb`); `outputs/` and `logs/` become the job's files when it ends,
  whichever way;
- a pipeline job runs no process of its own: its nodes' child jobs
  (tests/backends/azureml_v2_pipeline_nodes.py) run as these command jobs do, each from a copy
  of its node's code taken at submission, a bound input downloaded from the data asset version
  its writer registered;
- a sweep job runs no process of its own: its trials (tests/backends/azureml_v2_sweep_trials.py)
  run as these command jobs do, each with its sampled values in its command, from a copy of
  the snapshot taken at submission (as v1's stand-in runs HyperDrive trials);
- a non-zero exit fails the job with the service's "user process exited" error naming the
  exception; reaching `limits.timeout` cancels it, as the service does; a cancel
  kills it (Canceled); a preemption kills it and ends it Failed with AzureML's
  PreemptionError (FACTS.md).

The job's script runs through tests/backends/azureml_v2_job_launcher.py, which points the
in-job half's workspace backend (a resumed job fetches its predecessor's checkpoint through it)
at this stand-in's storage: the one thing a test process cannot give a subprocess otherwise.
"""

from __future__ import annotations

import contextlib
import json
import re
import shlex
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from himl_tasks.errors import SourceChangedError
from tests.backends import azureml_v2_job_launcher
from tests.backends.azureml_v2_pipeline_nodes import FakePipelineJob
from tests.backends.azureml_v2_service import (
    ARTIFACT_DATASTORE,
    ENDED,
    LOG_FILE,
    PREEMPTION_ERROR,
    FakeAzureMLV2Service,
    FakeJob,
    Outcome,
    script_error,
    utc_now,
)
from tests.backends.azureml_v2_sweep_trials import FakeSweepJob
from tests.backends.job_process import (
    JobProcess,
    Preemption,
    copy_files,
    has_files,
    inherited_environment,
    preemption_fires,
)
from tests.conftest import workspace_containers

LAUNCHER = Path(azureml_v2_job_launcher.__file__)
_DATASTORE_PATH = re.compile(
    r"azureml://(?:subscriptions/[^/]+/resourcegroups/[^/]+/workspaces/[^/]+/)?"
    r"datastores/(?P<datastore>[^/]+)/paths/(?P<path>.*)",
    re.IGNORECASE,
)
_DATA_ASSET = re.compile(r"azureml:(?P<name>[^:@/]+)(?::(?P<version>\d+)|@latest)?")
_BINDING = re.compile(r"\$\{\{\s*(?P<kind>inputs|outputs)\.(?P<name>[A-Za-z_]\w*)\s*\}\}")


class ExecutingJob(FakeJob):
    """A v2 command job whose command runs as a process on the stand-in's compute.

    Its status moves one step per read of its run details: Starting, Preparing (inputs
    fetched), Queued, then Running from the moment its process starts while it lives,
    Finalizing once it has ended (its files uploaded), then Completed (outputs uploaded and
    registered) or Failed.
    """

    service: ExecutingAzureMLV2Service

    def __init__(self, service: ExecutingAzureMLV2Service, fake: FakeJob) -> None:
        super().__init__(service, fake.entity, fake.outcome, parent=fake.parent,
                         snapshot=fake.snapshot)  # fmt: skip
        if getattr(fake.entity, "trial", None) is not None:
            raise NotImplementedError("the executing stand-in runs command jobs, not sweeps")
        self.current = "Starting"
        self.error: dict[str, Any] | None = None
        self.process = JobProcess(
            service.compute_root / self.name, Path(str(fake.entity.code)), fake.snapshot
        )
        self.input_folders: dict[str, Path] = {}
        self.output_folders: dict[str, Path] = {}
        self.preempted = False

    @property
    def status(self) -> str:
        return "Canceled" if self.canceled else self.current

    def poll(self) -> None:
        """One read of the job's details: see the class docstring."""
        if self.status in ENDED:
            return
        if self.current == "Starting":
            self.current = "Preparing"
            self._fetch_inputs()
        elif self.current == "Preparing":
            self.current = "Queued"
        elif self.current == "Queued":
            self._start()
            self.current = "Running"
            self.started_at = utc_now()
        elif self.current == "Running":
            if self.service.should_preempt(self):
                self.preempt()
            elif self.process.alive:
                self._upload_log()
                self._upload_logs_folder()
            else:
                self.current = "Finalizing"
                self._upload_files(outputs=self.process.return_code == 0)
        elif self.process.timed_out:
            self._end("Canceled")
        elif self.process.return_code == 0:
            self._end("Completed")
            self.outputs_registered = True
            self.service.register_outputs(self)
        else:
            message = self.process.exit_message()
            self._end("Failed", {"error": {**script_error(1)["error"], "message": message}})

    def cancel(self) -> None:
        """Kills the job's process; its log and files so far are kept (Canceled)."""
        if self.status in ENDED:
            return
        self.canceled = True
        self.process.kill()
        self._upload_files(outputs=False)
        self.ended_at = utc_now()

    def preempt(self) -> None:
        """Takes the job's nodes back: its process is killed, and it ends Failed."""
        self.preempted = True
        self.process.kill()
        self._upload_files(outputs=False)
        self._end("Failed", PREEMPTION_ERROR)

    def details(self) -> dict[str, Any]:
        details = super().details()
        if self.status == "Failed":
            details["error"] = self.error
        return details

    @property
    def script(self) -> str:
        from tests.backends.azureml_v2_service import entry_script_of

        return entry_script_of(self.entity)

    # ---- the job's life ----------------------------------------------------------------

    def _fetch_inputs(self) -> None:
        for name, given in (getattr(self.entity, "inputs", None) or {}).items():
            path = getattr(given, "path", None)
            if path is None:  # a literal input (a number, a string): nothing to fetch
                continue
            datastore, remote = self.service.datastore_location(str(path))
            scratch = self.process.folder / "downloads" / name
            self.service.store(datastore).download(remote + "/", scratch)
            target = self._on_compute(given, self.process.folder / "inputs" / name)
            target.parent.mkdir(parents=True, exist_ok=True)
            if (scratch / remote).is_dir():
                shutil.move(scratch / remote, target)
            else:
                target.mkdir(parents=True, exist_ok=True)
            self.input_folders[name] = target
        for name, output in (getattr(self.entity, "outputs", None) or {}).items():
            folder = self._on_compute(output, self.process.folder / "outputs" / name)
            folder.mkdir(parents=True, exist_ok=True)
            self.output_folders[name] = folder

    def _on_compute(self, given: Any, default: Path) -> Path:
        """Where an input or output is on the compute node: its `path_on_compute`, if set.

        A relative path is in the working folder; an absolute one is kept under the job's
        folder, never written at that place on the test machine.
        """
        path = getattr(given, "path_on_compute", None)
        if not path:
            return default
        if str(path).startswith("/"):
            return self.process.folder / "node" / str(path).lstrip("/")
        return self.process.working_folder / str(path)

    def _start(self) -> None:
        control = self.process.folder / "job.json"
        control.write_text(json.dumps(self.service.job_side_control()), encoding="utf-8")
        words = shlex.split(_BINDING.sub(self._binding, str(self.entity.command)))
        if not words or words[0] not in ("python", "python3"):
            raise NotImplementedError(f"the stand-in runs `python ...` commands: {words}")
        limits = getattr(self.entity, "limits", None)
        self.process.launch(
            [sys.executable, str(LAUNCHER), *words[1:]],
            self._environment(control),
            getattr(limits, "timeout", None),
        )

    def _binding(self, found: re.Match[str]) -> str:
        folders = self.input_folders if found["kind"] == "inputs" else self.output_folders
        if found["name"] in folders:
            return shlex.quote(str(folders[found["name"]]))
        value = (getattr(self.entity, "inputs", None) or {}).get(found["name"])
        return shlex.quote(str(getattr(value, "default", None) or value))

    def _environment(self, control: Path) -> dict[str, str]:
        service = self.service
        variables = {k: str(v) for k, v in (self.entity.environment_variables or {}).items()}
        return {
            **inherited_environment(),  # a compute node has none of the submitter's
            **variables,
            **{f"AZURE_ML_INPUT_{n}": str(p) for n, p in self.input_folders.items()},
            **{f"AZURE_ML_OUTPUT_{n}": str(p) for n, p in self.output_folders.items()},
            "AZUREML_RUN_ID": self.name,
            "AZUREML_ARM_SUBSCRIPTION": service.subscription_id,
            "AZUREML_ARM_RESOURCEGROUP": service.resource_group,
            "AZUREML_ARM_WORKSPACE_NAME": service.workspace_name,
            "AZUREML_ARM_PROJECT_NAME": str(self.entity.experiment_name),
            "MLFLOW_TRACKING_URI": service.tracking_uri,
            "MLFLOW_RUN_ID": service.mlflow_run_id(self),
            "MLFLOW_EXPERIMENT_NAME": str(self.entity.experiment_name),
            azureml_v2_job_launcher.CONTROL_FILE: str(control),
        }

    def _upload_log(self) -> None:
        data = self.process.grown_log()
        if data is not None:
            self.service.write_run_file(self.name, LOG_FILE, data)

    def _upload_logs_folder(self) -> None:
        """`logs/` while the job runs: what it wrote there so far, changed files again.

        AzureML loads TensorBoard logs a job writes into its logs folder "in real-time from
        Azure Blob Storage" (the azureml-tensorboard package's description, PyPI; hi-ml's
        `himl-tb` relies on it). Taken to hold for v2 jobs too: not checked live. A file caught
        while the job writes it is sent on a later poll.
        """
        folder = self.process.working_folder / "logs"
        if not has_files(folder):
            return
        with contextlib.suppress(SourceChangedError):
            self.service.store(ARTIFACT_DATASTORE).upload_folder(
                folder, f"ExperimentRun/dcid.{self.name}/logs", overwrite=True
            )

    def _upload_files(self, *, outputs: bool) -> None:
        """The final log, `outputs/` and `logs/`; with `outputs`, the outputs' folders too."""
        self._upload_log()
        artifacts = self.service.store(ARTIFACT_DATASTORE)
        for kept in ("outputs", "logs"):
            if has_files(self.process.working_folder / kept):
                artifacts.upload_folder(
                    self.process.working_folder / kept,
                    f"ExperimentRun/dcid.{self.name}/{kept}",
                    overwrite=True,
                )
        # What the job logged as MLflow artifacts (images) is among its files too. (Where
        # AzureML keeps them is taken to be the job's artifact folder: not checked live.)
        logged = self.service.mlflow_artifact_folder(self)
        if logged is not None and has_files(logged):
            artifacts.upload_folder(logged, f"ExperimentRun/dcid.{self.name}", overwrite=True)
        if not outputs:
            return
        for name, folder in self.output_folders.items():
            path = str(
                self.entity.outputs[name].path or self.service.default_output_path(self.name, name)
            ).replace("${{name}}", self.name)
            datastore, destination = self.service.datastore_location(
                path.replace("{name}", self.name)
            )
            if has_files(folder):
                self.service.store(datastore).upload_folder(folder, destination.rstrip("/"))

    def _end(self, status: str, error: dict[str, Any] | None = None) -> None:
        self.current = status
        self.error = error
        self.ended_at = utc_now()


class ExecutingAzureMLV2Service(FakeAzureMLV2Service):
    """The v2 service stand-in whose command jobs execute (see the module docstring).

    Attributes:
        preemptions: When running jobs are preempted.
        executed: The jobs that ran, in the order submitted.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.compute_root = Path(str(self._root)) / "compute"
        self.preemptions: list[Preemption] = []
        self.executed: list[ExecutingJob] = []

    def mlflow_run_id(self, job: FakeJob) -> str:
        """The job's MLflow run; its experiment keeps artifacts under the stand-in's folder."""
        experiment = str(job.entity.experiment_name)
        client = self._mlflow()
        if job.mlflow_run_id is None and client.get_experiment_by_name(experiment) is None:
            location = Path(str(self._root)) / "mlflow-artifacts" / experiment
            client.create_experiment(experiment, artifact_location=location.as_uri())
        return super().mlflow_run_id(job)

    def mlflow_artifact_folder(self, job: FakeJob) -> Path | None:
        """Where the job's MLflow artifacts are on this machine (the SQL store's layout:
        `<experiment's artifact location>/<run id>/artifacts`), or None before it has a run."""
        if job.mlflow_run_id is None:
            return None
        experiment = str(job.entity.experiment_name)
        root = Path(str(self._root)) / "mlflow-artifacts" / experiment
        return root / job.mlflow_run_id / "artifacts"

    def create_job(self, job: Any) -> Any:
        created = super().create_job(job)
        name = str(created.name)
        sweep = self.jobs[name]
        if isinstance(sweep, FakePipelineJob):
            # A pipeline job runs no process: its nodes' child jobs run (`start_trial`),
            # each from a copy of its node's code taken now, at submission.
            for node, files in sweep.node_snapshots.items():
                sweep.node_code[node] = self.compute_root / f"{name}.{node}.snapshot"
                copy_files(Path(str(sweep.nodes[node].code)), files, sweep.node_code[node])
            return created
        if isinstance(sweep, FakeSweepJob):
            # A sweep job runs no process: it starts its trials, which run (`start_trial`),
            # each from a copy of the snapshot taken now, at submission.
            sweep.outcome = Outcome(log_lines=())
            sweep.trial_code = self.compute_root / f"{name}.snapshot"
            copy_files(Path(str(sweep.entity.trial.code)), sweep.snapshot, sweep.trial_code)
            return created
        executing = ExecutingJob(self, self.jobs[name])
        self.jobs[name] = executing
        self.executed.append(executing)
        return executing.as_entity()

    def start_trial(self, trial: FakeJob) -> FakeJob:
        """A sweep's trial runs its command, with its sampled values, as a process."""
        executing = ExecutingJob(self, trial)
        self.jobs[trial.name] = executing
        self.executed.append(executing)
        return executing

    def shutdown(self) -> None:
        """Ends every job process still running, then removes the stand-in's files."""
        for job in self.executed:
            job.process.kill()
        super().shutdown()

    def should_preempt(self, job: ExecutingJob) -> bool:
        """True when a preemption rule fires for this running job (each fires a set number)."""
        return preemption_fires(
            self.preemptions,
            job.script,
            [each.script for each in self.executed if each.preempted],
            lambda name: sum(1 for m in self.metrics(job.name) if m.name == name),
        )

    def datastore_location(self, path: str) -> tuple[str, str]:
        """The (datastore, folder) an input or output path names.

        Raises:
            NotImplementedError: For a path that is neither on a datastore nor a data asset.
        """
        found = _DATASTORE_PATH.fullmatch(path)
        if found:
            return found["datastore"], found["path"].rstrip("/")
        asset = _DATA_ASSET.fullmatch(path)
        if asset:
            version = int(asset["version"]) if asset["version"] else None
            data = self.data(asset["name"], version)
            if data is None:
                raise NotImplementedError(f"no data asset '{asset['name']}' for the job's {path}")
            return self.datastore_location(str(data.path))
        raise NotImplementedError(f"the stand-in reads datastore paths and data assets: {path}")

    def job_side_control(self) -> dict[str, Any]:
        """What a job's process is told of its workspace (read by azureml_v2_job_launcher.py).

        The artifact store's blob container and account key (which a real job would get from
        the service with its own identity) and the jobs known so far.
        """
        artifacts = self.datastores[ARTIFACT_DATASTORE]
        return {
            "account_url": self.azurite.account_url,
            "account_name": artifacts.account_name,
            "account_key": artifacts.credentials.account_key,
            "artifact_container": artifacts.container_name,
            "workspace": [self.subscription_id, self.resource_group, self.workspace_name],
            "jobs": {
                name: {"experiment": str(job.entity.experiment_name), "status": job.status}
                for name, job in self.jobs.items()
            },
        }


def executing_v2_service(
    azurite: Any, computes: dict[str, str] | None = None
) -> Iterator[ExecutingAzureMLV2Service]:
    """An executing v2 stand-in on fresh Azurite containers; everything removed afterwards."""
    with workspace_containers(azurite) as names:
        service = ExecutingAzureMLV2Service(
            azurite,
            names,
            computes=computes or {"cpu-cluster": "dedicated", "spot-cluster": "low_priority"},
        )
        try:
            yield service
        finally:
            service.shutdown()  # no job process outlives its test


@pytest.fixture
def executing_v2_service_fixture(azurite: Any) -> Iterator[ExecutingAzureMLV2Service]:
    """The executing v2 stand-in (import it into a test module as a fixture)."""
    yield from executing_v2_service(azurite)
