"""The AzureML SDK v2 half of `himl_tasks.runtime`: used only inside a v2 job.

`AzureMLV2Backend` names this module in the job's `HIML_IN_JOB`. Everything else the job learns
from the variables AzureML itself sets in a v2 command job:

- `AZUREML_RUN_ID`: the job's name, which is its run id; `AZUREML_ARM_PROJECT_NAME`: its
  experiment; `AZUREML_ARM_SUBSCRIPTION`, `AZUREML_ARM_RESOURCEGROUP`,
  `AZUREML_ARM_WORKSPACE_NAME`: its workspace (azure-ai-ml reads the same variables inside a
  job: azure/ai/ml/identity/_credentials/_AzureMLSparkOnBehalfOfCredential.py, `_get_client_args`
  and `_get_request`).
- `MLFLOW_TRACKING_URI` and `MLFLOW_RUN_ID`: the workspace's MLflow tracking server and the
  job's MLflow run, whose id is the job's name. Metrics of a v2 job go there ("Configure MLflow
  for Azure Machine Learning", Azure Machine Learning docs: on AzureML compute "you don't need
  to configure the tracking URI. It's automatically configured for you"; the runtime sets these
  variables over a job's own: Azure/azure-sdk-for-python issue 38813).
- `AZURE_ML_INPUT_<name>` / `AZURE_ML_OUTPUT_<name>`: where each input and output is on the
  compute node. The backend names them `INPUT_<i>` and `OUTPUT_<i>`, as hi-ml 0.5 does
  (`himl_tasks.job_variables.azureml_v2_input_folder`).

MLflow is imported only when a value is logged (it takes seconds): a job that logs nothing
never pays for it.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from himl_tasks import job_variables
from himl_tasks.backends.azureml_v2.metrics import TEXT_METRIC_TAG_PREFIX
from himl_tasks.errors import ConfigurationError, InvalidInputError
from himl_tasks.runtime import AzureRunInfo
from himl_tasks.runtime.himl_run_context import RecordingRun

if TYPE_CHECKING:
    from himl_tasks.backends.base import Backend

IMAGES_FOLDER = "images"
"""Where `log_image` puts an image among the run's MLflow artifacts (the job's run files)."""

# MLflow keeps a metric's step as a 64-bit integer.
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1

# An image's name becomes a file name: anything but these characters becomes "_".
_UNSAFE_FILE_CHARACTERS = re.compile(r"[^A-Za-z0-9._-]")


@dataclass(frozen=True)
class AzureMLV2RunContext:
    """A v2 job seen from inside: its run id (the job's name), experiment and MLflow run.

    Attributes:
        run_id: The job's name.
        experiment: The job's experiment.
        tracking_uri: The MLflow tracking server AzureML gave the job.
        mlflow_run_id: The job's MLflow run (on AzureML, the job's name again).
        attempt: Always 1: AzureML restarting a preempted job itself keeps its run.
    """

    run_id: str
    experiment: str
    tracking_uri: str
    mlflow_run_id: str
    attempt: int = 1

    @functools.cached_property
    def sdk_run(self) -> AzureMLV2Run:
        """hi-ml's run in a v2 job (`RUN_CONTEXT`): azureml's Run methods over MLflow."""
        return AzureMLV2Run(self)

    @functools.cached_property
    def _client(self) -> Any:
        # Imported here: mlflow takes seconds to import. Its HTTP requests have their own
        # deadline (MLFLOW_HTTP_REQUEST_TIMEOUT, 120 s by default) and bounded retries.
        from mlflow.tracking import MlflowClient

        return MlflowClient(tracking_uri=self.tracking_uri)

    def log_metrics(self, values: Mapping[str, float | str], step: int | None = None) -> None:
        """Logs the values to the job's MLflow run in one request (text values as tags).

        A value without a step is logged at step 0, as `mlflow.log_metric` does.

        Raises:
            InvalidInputError: If MLflow refuses a name or value (e.g. a name with characters
                MLflow does not allow), or cannot keep it: a step outside a 64-bit integer, a
                whole number too big for a float. Nothing of the call is logged then.
        """
        from mlflow.entities import Metric, RunTag
        from mlflow.exceptions import MlflowException

        if step is not None and not _INT64_MIN <= step <= _INT64_MAX:
            raise InvalidInputError(
                f"metrics {sorted(values)} of job {self.run_id}: step {step} is outside a "
                "64-bit integer, which MLflow keeps a step as"
            )
        now = int(time.time() * 1000)
        metrics = [
            Metric(name, _float(name, value), now, step or 0)
            for name, value in values.items()
            if not isinstance(value, str)
        ]
        tags = [
            RunTag(TEXT_METRIC_TAG_PREFIX + name, value)
            for name, value in values.items()
            if isinstance(value, str)
        ]
        try:
            self._client.log_batch(self.mlflow_run_id, metrics=metrics, tags=tags)
        except MlflowException as error:
            if error.error_code != "INVALID_PARAMETER_VALUE":
                raise
            raise InvalidInputError(
                f"MLflow refused the metrics {sorted(values)} of job {self.run_id}: {error.message}"
            ) from None

    def log_image(self, name: str, path: Path) -> None:
        """Keeps the image among the job's files as `images/<name><suffix>`, an MLflow artifact."""
        safe_name = _UNSAFE_FILE_CHARACTERS.sub("_", name).lstrip(".") or "image"
        with tempfile.TemporaryDirectory(prefix="himl-image-") as scratch:
            named = Path(scratch) / f"{safe_name}{path.suffix or '.png'}"
            shutil.copyfile(path, named)
            self._client.log_artifact(self.mlflow_run_id, str(named), artifact_path=IMAGES_FOLDER)


@dataclass(frozen=True)
class JobExperiment:
    """The experiment as `RUN_CONTEXT.experiment` shows it in a v2 job."""

    name: str


class AzureMLV2Run(RecordingRun):
    """hi-ml's `RUN_CONTEXT` in a v2 job: the members of azureml's `Run` a script uses.

    hi-ml 0.5 gives a v2 job azureml-core's `Run.get_context()`, which needs azureml-core in
    the job's environment; a himl-tasks v2 job needs only MLflow. `log`, `log_list`,
    `log_row`, `log_table`, `log_image` and `flush` record as on every backend; `experiment`
    (so that hi-ml's `is_running_in_azure_ml(RUN_CONTEXT)` is True, as it is in hi-ml's v2
    jobs), `tag`, `set_tags`, `get_tags` (MLflow tags of the job's run) and `upload_file` (an
    MLflow artifact, among the job's files) are azureml's, with its signatures
    (azureml/core/run.py).
    """

    context: AzureMLV2RunContext

    def __init__(self, context: AzureMLV2RunContext) -> None:
        super().__init__(context, {})

    @property
    def experiment(self) -> JobExperiment:
        """The job's experiment."""
        return JobExperiment(self.context.experiment)

    def tag(self, key: str, value: Any = None) -> None:
        """Sets one tag of the job (an empty value when none is given)."""
        self.set_tags({key: "" if value is None else value})

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        """Sets tags of the job's MLflow run (values as text)."""
        from mlflow.entities import RunTag

        run_tags = [RunTag(key, str(value)) for key, value in tags.items()]
        self.context._client.log_batch(self.context.mlflow_run_id, tags=run_tags)

    def get_tags(self) -> dict[str, str]:
        """The tags of the job's MLflow run."""
        run = self.context._client.get_run(self.context.mlflow_run_id)
        return dict(run.data.tags)

    def upload_file(
        self, name: str, path_or_stream: Any, datastore_name: str | None = None
    ) -> None:
        """Adds a file (a path, or a binary stream) to the job's files under `name`.

        Raises:
            InvalidInputError: If `name` is not a relative file path inside the job's files
                (empty, a folder, absolute, a drive, or climbing out with `..`).
        """
        relative = name.replace("\\", "/")
        parts = PurePosixPath(relative).parts
        if (
            not parts
            or relative.endswith("/")
            or relative.startswith("/")
            or ".." in parts
            or ":" in parts[0]
        ):
            raise InvalidInputError(
                f"upload_file({name!r}, ...): the name is where the file goes among the job's "
                "files, a relative file path such as 'outputs/report.txt'"
            )
        folder, _, file_name = relative.rpartition("/")
        with tempfile.TemporaryDirectory(prefix="himl-upload-") as scratch:
            copy = Path(scratch) / file_name
            if isinstance(path_or_stream, str | os.PathLike):
                shutil.copyfile(path_or_stream, copy)
            else:
                copy.write_bytes(path_or_stream.read())
            self.context._client.log_artifact(
                self.context.mlflow_run_id, str(copy), artifact_path=folder or None
            )


def run_context() -> AzureMLV2RunContext:
    """The v2 job this process belongs to.

    Raises:
        ConfigurationError: If a variable AzureML sets in every v2 job is missing (a stale
            `HIML_IN_JOB` in a plain shell, or a job not started by AzureML).
    """
    return AzureMLV2RunContext(
        run_id=_required(job_variables.AZUREML_RUN_ID),
        experiment=os.environ.get(job_variables.AZUREML_EXPERIMENT, ""),
        tracking_uri=_required(job_variables.MLFLOW_TRACKING_URI),
        mlflow_run_id=_required(job_variables.MLFLOW_RUN_ID),
    )


def run_info() -> AzureRunInfo:
    """Where the data of the current v2 job is.

    Inputs and outputs are numbered as long as AzureML gave the job a folder for the next one
    (`AZURE_ML_INPUT_INPUT_<i>`, `AZURE_ML_OUTPUT_OUTPUT_<i>`); `outputs/` and `logs/` in the
    working folder are the two folders AzureML keeps as the job's files.

    Raises:
        ConfigurationError: If `AZUREML_RUN_ID` is missing (not inside a v2 job).
    """
    _required(job_variables.AZUREML_RUN_ID)
    return AzureRunInfo(
        input_datasets=_numbered(job_variables.azureml_v2_input_folder),
        output_datasets=_numbered(job_variables.azureml_v2_output_folder),
        output_folder=Path.cwd() / "outputs",
        logs_folder=Path.cwd() / "logs",
        is_running_in_azure_ml=True,
    )


def job_workspace_backend() -> Backend:
    """The AzureML v2 backend on the workspace of the job this process belongs to.

    The workspace is the one AzureML names in the job's `AZUREML_ARM_*` variables, signed in
    with the job's own identity (`himl_tasks.backends.azureml_v2.workspace.ml_client`).
    """
    from himl_tasks.backends.azureml_v2.backend import AzureMLV2Backend
    from himl_tasks.backends.azureml_v2.workspace import ml_client

    return AzureMLV2Backend(ml_client())


def fetch_resumed_checkpoint(recovery_id: str, folder: Path) -> None:
    """Copies the latest recovery checkpoint of the run being resumed into `folder`.

    A resubmitted job (a new job with `resume_from`) fetches its predecessor's checkpoint from
    that job's files (`outputs/...` in the workspace's artifact store), through the transfer
    engine with checksums, on local rank 0 (the others wait at a barrier).
    """
    # Only a resumed job pays for the transfer engine.
    from himl_tasks.backends.checkpoint_files import fetch_latest_recovery_checkpoint

    fetch_latest_recovery_checkpoint(job_workspace_backend(), recovery_id, folder)


def _float(name: str, value: Any) -> float:
    """A metric value as MLflow keeps it.

    Raises:
        InvalidInputError: For a whole number too big for a float.
    """
    try:
        return float(value)
    except OverflowError:
        raise InvalidInputError(
            f"metric {name!r}: {value} is too big for a float, which MLflow keeps a value as; "
            "log it as text (str) to keep its digits"
        ) from None


def _numbered(variable: Callable[[int], str]) -> list[Path | None]:
    folders: list[Path | None] = []
    while variable(len(folders)) in os.environ:
        folders.append(Path(os.environ[variable(len(folders))]))
    return folders


def _required(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise ConfigurationError(
            f"the environment variable {name} is not set, but {job_variables.IN_JOB} says this "
            "process is an AzureML v2 job; AzureML sets it in every v2 job. Unset "
            f"{job_variables.IN_JOB} to run the script outside any run"
        )
    return value
