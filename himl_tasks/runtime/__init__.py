"""The in-job API: what a script imports to find its data and report what it does.

The same script runs unchanged inside a local run, inside an AzureML run, and as a plain
`python script.py`:

```python
from himl_tasks.runtime import get_run_info, log_metric

run_info = get_run_info()
data_folder = run_info.input_datasets[0]
for epoch in range(10):
    ...
    log_metric("loss", loss, step=epoch)
```

This module imports neither Prefect nor AzureML nor torch up front.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from himl_tasks import job_variables as env_names
from himl_tasks.datasets import DatasetConfig, as_dataset_config

logger = logging.getLogger(__name__)

RECOVERY_CHECKPOINT_PREFIX = "recovery"
_AZUREML_RUN_VARIABLE = "AZUREML_RUN_ID"


class RunContext(Protocol):
    """The run a script is part of, as far as the script needs it."""

    @property
    def run_id(self) -> str:
        """The run's id."""
        ...

    @property
    def experiment(self) -> str:
        """The run's experiment."""
        ...

    @property
    def attempt(self) -> int:
        """The attempt this process belongs to (1 for the first)."""
        ...

    def log_metrics(self, values: Mapping[str, float], step: int | None = None) -> None:
        """Records metric values."""
        ...


@dataclass(frozen=True)
class LocalRunContext:
    """A run of the local backend, seen from inside its job."""

    workspace: Path
    run_id: str
    experiment: str
    attempt: int

    def log_metrics(self, values: Mapping[str, float], step: int | None = None) -> None:
        """Records metric values in the workspace's registry, for this attempt."""
        from himl_tasks.backends.local.registry import Registry

        rows = [(name, float(value), step) for name, value in values.items()]
        Registry(self.workspace).log_metrics(self.run_id, self.attempt, rows)


@dataclass(frozen=True)
class AzureRunInfo:
    """Where a script finds its data and writes its results (hi-ml's `AzureRunInfo`).

    Attributes:
        input_datasets: A folder per input dataset, in the job spec's order (None outside a
            job when the config has no `local_folder`).
        output_datasets: A folder per output dataset, likewise.
        output_folder: Where to write results kept with the run (`outputs/`).
        logs_folder: Where to write logs kept with the run (`logs/`).
        run: The run, inside a job; None in a plain `python script.py`.
        is_running_in_azure_ml: True inside an AzureML run.
    """

    input_datasets: list[Path | None]
    output_datasets: list[Path | None]
    output_folder: Path | None
    logs_folder: Path | None
    run: Any = None
    is_running_in_azure_ml: bool = False


def is_running_in_azure_ml() -> bool:
    """True inside an AzureML run."""
    return bool(os.environ.get(_AZUREML_RUN_VARIABLE))


def current_run() -> RunContext | None:
    """The run this process belongs to, or None outside any run."""
    if os.environ.get(env_names.RUN_ID) and os.environ.get(env_names.WORKSPACE):
        return LocalRunContext(
            workspace=Path(os.environ[env_names.WORKSPACE]),
            run_id=os.environ[env_names.RUN_ID],
            experiment=os.environ.get(env_names.EXPERIMENT, ""),
            attempt=int(os.environ.get(env_names.ATTEMPT, "1")),
        )
    if is_running_in_azure_ml():
        from himl_tasks.backends.azureml_v1.in_job import azureml_run_context

        return azureml_run_context()
    return None


class DatasetSource(Protocol):
    """Where a script run outside any job gets its input datasets from (a backend)."""

    def local_dataset_folder(self, config: DatasetConfig, destination: Path) -> Path:
        """The dataset's files on this machine."""
        ...


def get_run_info(
    input_datasets: Sequence[DatasetConfig | str] = (),
    output_datasets: Sequence[DatasetConfig | str] = (),
    *,
    backend: DatasetSource | None = None,
) -> AzureRunInfo:
    """Describes where this script runs and where its data is.

    Inside a job, the folders come from the job. Outside one (a plain `python script.py`),
    the given dataset configs' `local_folder`s are used. An input without one is fetched from
    `backend` when given (downloaded into its `target_folder`, else a temporary folder; or
    mounted, on AzureML, with `use_mounting`), else it is None. `outputs/` and `logs/` under
    the current folder are created, as hi-ml does.

    Args:
        input_datasets: The script's input datasets, used outside a job only.
        output_datasets: The script's output datasets, used outside a job only.
        backend: Where inputs without a `local_folder` come from, outside a job.
    """
    run = current_run()
    if run is not None and not is_running_in_azure_ml():
        inputs = _folders(env_names.INPUT_DATASET_COUNT, env_names.input_dataset)
        outputs = _folders(env_names.OUTPUT_DATASET_COUNT, env_names.output_dataset)
        return AzureRunInfo(
            input_datasets=inputs,
            output_datasets=outputs,
            output_folder=Path(os.environ[env_names.OUTPUT_FOLDER]),
            logs_folder=Path(os.environ[env_names.LOGS_FOLDER]),
            run=run,
            is_running_in_azure_ml=False,
        )
    if run is not None:
        from himl_tasks.backends.azureml_v1.in_job import azureml_run_info

        return azureml_run_info(run)
    output_folder, logs_folder = Path.cwd() / "outputs", Path.cwd() / "logs"
    output_folder.mkdir(exist_ok=True)
    logs_folder.mkdir(exist_ok=True)
    return AzureRunInfo(
        input_datasets=[_local_input(as_dataset_config(d), backend) for d in input_datasets],
        output_datasets=[as_dataset_config(d).local_folder for d in output_datasets],
        output_folder=output_folder,
        logs_folder=logs_folder,
        run=None,
        is_running_in_azure_ml=False,
    )


def _local_input(config: DatasetConfig, backend: DatasetSource | None) -> Path | None:
    if config.local_folder is not None or backend is None:
        return config.local_folder
    destination = config.target_folder or Path(tempfile.mkdtemp(prefix=f"himl-{config.name}-"))
    return backend.local_dataset_folder(config, destination)


def _folders(count_variable: str, variable: Any) -> list[Path | None]:
    count = int(os.environ.get(count_variable, "0"))
    return [
        Path(os.environ[variable(i)]) if variable(i) in os.environ else None for i in range(count)
    ]


def log_metric(name: str, value: float, step: int | None = None) -> None:
    """Records one metric value with the run; outside a run it is only logged (INFO)."""
    log_metrics({name: value}, step=step)


def log_metrics(values: Mapping[str, float], step: int | None = None) -> None:
    """Records several metric values at one step; only rank zero of a distributed job logs.

    Outside a run the values go to this module's logger, so a plain `python script.py`
    behaves the same without recording anything.
    """
    if not is_global_rank_zero():
        return
    run = current_run()
    if run is None:
        logger.info("metrics%s: %s", f" (step {step})" if step is not None else "", dict(values))
        return
    run.log_metrics(values, step=step)


def is_global_rank_zero() -> bool:
    """True unless this is a distributed job's process of rank other than 0."""
    return os.environ.get("RANK", "0") == "0"


def is_local_rank_zero() -> bool:
    """True in the first process on each node (and whenever the job is not distributed)."""
    return os.environ.get("LOCAL_RANK", "0") == "0"


def torch_barrier() -> None:
    """Waits for every process of a distributed job; does nothing without torch.distributed."""
    try:
        import torch.distributed as dist
    except ImportError:
        return
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def set_environment_variables_for_multi_node() -> None:
    """Sets MASTER_ADDR, MASTER_PORT and NODE_RANK from AzureML's MPI variables.

    The local backend sets these itself; on AzureML with an MPI configuration they are derived
    from the variables AzureML sets on each node. Variables already set are left alone.
    """
    master = (
        os.environ.get("AZ_BATCHAI_MPI_MASTER_NODE")
        or os.environ.get("AZ_BATCH_MASTER_NODE", "").split(":")[0]
    )
    if master:
        os.environ.setdefault("MASTER_ADDR", master)
    os.environ.setdefault("MASTER_PORT", "6105")
    node_rank = os.environ.get("OMPI_COMM_WORLD_RANK") or os.environ.get("NODE_RANK")
    if node_rank is not None:
        os.environ.setdefault("NODE_RANK", node_rank)


def find_latest_recovery_checkpoint(folder: Path | str) -> Path | None:
    """Returns the recovery checkpoint with the highest epoch number in a folder, or None.

    Recovery checkpoints are files whose names start with "recovery" and contain the epoch
    number, e.g. `recovery_epoch=12.ckpt` (hi-ml's and PyTorch Lightning's naming). Files still
    being written by a preempted job are skipped when a temporary name ends them.

    In a job submitted to resume another run (`JobSpec.resume_from`), the resumed run's latest
    checkpoint is found too: the local backend puts it into `outputs/checkpoints/` before the
    job starts; on AzureML it is fetched into `folder` here, when the folder has none.
    """
    found = _latest_recovery_checkpoint(Path(folder))
    resume_from = os.environ.get(env_names.RESUME_FROM)
    if found is None and resume_from and is_running_in_azure_ml():
        from himl_tasks.backends.azureml_v1.in_job import fetch_resumed_checkpoint

        fetch_resumed_checkpoint(resume_from, Path(folder))
        found = _latest_recovery_checkpoint(Path(folder))
    return found


def _latest_recovery_checkpoint(directory: Path) -> Path | None:
    """The highest-epoch recovery checkpoint already in a folder (nothing is fetched)."""
    candidates: list[tuple[int, Path]] = []
    if not directory.is_dir():
        return None
    for path in directory.iterdir():
        if not path.is_file() or not path.name.startswith(RECOVERY_CHECKPOINT_PREFIX):
            continue
        if path.name.endswith((".tmp", ".partial", ".himl-partial")):
            continue
        numbers = re.findall(r"\d+", path.stem)
        if numbers:
            candidates.append((int(numbers[0]), path))
    return max(candidates)[1] if candidates else None
