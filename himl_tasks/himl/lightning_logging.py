"""hi-ml's Lightning logging (`health_ml.utils`), written for PyTorch Lightning 2.

`AzureMLLogger`, `log_on_epoch` and `log_learning_rate`, with hi-ml's arguments. PyTorch
Lightning takes seconds to import, so this module is imported only when one of its names is first
used (`himl_tasks.himl` and the top-level package load it lazily); it imports Lightning
and torch at its top.

Where metrics go: inside a run, on any backend (AzureML, or a job of the local backend), to that
run, through hi-ml's `RUN_CONTEXT`. Outside any run, hi-ml's default logs nothing (and says so,
once per process); with `enable_logging_outside_azure_ml=True` the logger writes to the run given
as `run=`, else to a file in the current folder's `logs/` (`<experiment_name>.metrics.jsonl`,
one JSON object per value): a plain `python script.py` has no run to record with, and hi-ml's
alternative, creating an AzureML run from this process, would need an AzureML workspace the
script did not ask to submit to.
"""

from __future__ import annotations

import argparse
import datetime
import json
import numbers
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from pytorch_lightning import LightningModule
from pytorch_lightning.loggers import Logger
from pytorch_lightning.utilities import rank_zero_only

from himl_tasks.errors import InvalidInputError
from himl_tasks.himl.run_context import RUN_CONTEXT
from himl_tasks.job_spec import sanitize_experiment_name
from himl_tasks.metric_tables import metric_value, table_series
from himl_tasks.runtime import current_run

HYPERPARAMS_NAME = "hyperparams"
"""The table hyperparameters are logged as (hi-ml's name), with columns `name` and `value`."""

_said_nothing_is_logged = False


class AzureMLLogger(Logger):
    """A Lightning logger that writes metrics and hyperparameters to the current run.

    hi-ml 0.2's arguments. Inside a run (AzureML, or a local backend's job) it logs to that run
    whatever the arguments say. Outside any run it logs nothing unless
    `enable_logging_outside_azure_ml` is True; then it logs to `run` when given, else to
    `logs/<experiment_name>.metrics.jsonl` under the current folder.

    Args:
        enable_logging_outside_azure_ml: Log also when the script runs outside any run.
        experiment_name: Names the metrics file outside any run (characters AzureML does not
            allow in an experiment name become '_').
        run: The run to log to outside any run (e.g. an azureml `Run`, or a run object from
            `fetch_run`); flushed, not completed, when training ends (hi-ml's rule).
        run_name: Accepted for hi-ml's callers (the name of the AzureML run it would create).
        workspace: hi-ml creates an AzureML run in this workspace outside any run; here that is
            refused (submit the script with `--azureml`, or pass `run`).
        workspace_config_path: Likewise.
        snapshot_directory: Accepted for hi-ml's callers; nothing is snapshotted.

    Raises:
        InvalidInputError: If logging outside any run is asked for with a workspace and no run.
    """

    def __init__(
        self,
        enable_logging_outside_azure_ml: bool | None = False,
        experiment_name: str = "azureml_logger",
        run: Any = None,
        run_name: str | None = None,
        workspace: Any = None,
        workspace_config_path: Path | str | None = None,
        snapshot_directory: Path | str | None = None,
    ) -> None:
        super().__init__()
        self.enable_logging_outside_azure_ml = bool(enable_logging_outside_azure_ml)
        self.is_in_run = current_run() is not None
        self.has_user_provided_run = False
        self.run: Any = None
        if self.is_in_run:
            self.run = RUN_CONTEXT
        elif not self.enable_logging_outside_azure_ml:
            _say_nothing_is_logged()
        elif run is not None:
            self.run = run
            self.has_user_provided_run = True
        elif workspace is not None or workspace_config_path is not None:
            raise InvalidInputError(
                "AzureMLLogger(enable_logging_outside_azure_ml=True, workspace=...) would create "
                "an AzureML run from outside a job, which himl-tasks does not do: submit the "
                "script with --azureml (or --himl-local) and the logger logs to that run, pass "
                "an existing run as run=, or leave out the workspace to log to a local file"
            )
        else:
            # A name made of AzureML's characters: "../x" or "/tmp/x" would leave logs/.
            file_name = f"{sanitize_experiment_name(experiment_name)}.metrics.jsonl"
            self.run = MetricsFile(Path.cwd() / "logs" / file_name)
            print(f"AzureMLLogger is outside any run: writing metrics to {self.run.path}")

    @property
    def name(self) -> str:
        """Empty, as hi-ml's."""
        return ""

    @property
    def version(self) -> int:
        """0, as hi-ml's."""
        return 0

    @property
    def experiment(self) -> None:
        """None, as hi-ml's."""
        return None

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        """Logs each metric to the run; without a step when the metrics have an `epoch`.

        Lightning adds `epoch` to the metrics it logs once per epoch (hi-ml's rule: such metrics
        are a series by the order logged, step-level ones carry Lightning's step).
        """
        if self.run is None:
            return
        is_epoch_metric = "epoch" in metrics
        for key, value in metrics.items():
            self.run.log(key, value, step=None if is_epoch_metric else step)

    @rank_zero_only
    def log_hyperparams(
        self, params: argparse.Namespace | Mapping[str, Any] | None, *args: Any, **kwargs: Any
    ) -> None:
        """Logs the hyperparameters as one table, `hyperparams`, with columns `name` and `value`.

        A Namespace becomes a dict, nested dicts become names like `optimizer/lr`, and every
        value is logged as its text, as hi-ml does.
        """
        if self.run is None or params is None:
            return
        flat = flat_hyperparameters(params)
        if flat:
            self.run.log_table(HYPERPARAMS_NAME, {"name": list(flat), "value": list(flat.values())})

    @rank_zero_only
    def finalize(self, status: str) -> None:
        """Outside any run: flushes a run the caller gave, or closes the logger's own file."""
        if self.is_in_run or self.run is None:
            return
        if self.has_user_provided_run:
            self.run.flush()  # the caller completes their run (hi-ml's rule)
        else:
            self.run.complete()


class MetricsFile:
    """Where `AzureMLLogger` writes outside any run when asked to: one JSON object per value.

    Each line is `{"name", "value", "step", "time"}`; a table is written as series by
    `himl_tasks.metric_tables`' rule, as a run keeps it.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def log(self, name: str, value: Any, step: int | None = None) -> None:
        """Appends one value."""
        self._write([(name, metric_value(value), step)])

    def log_table(self, name: str, value: Mapping[str, list[Any]]) -> None:
        """Appends a table's values, column by column."""
        self._write(table_series(name, value))

    def flush(self) -> None:
        """Does nothing: every line is written when it is logged."""

    def complete(self) -> None:
        """Does nothing: the file is closed after every write."""

    def _write(self, rows: Sequence[tuple[str, float | str, int | None]]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        now = datetime.datetime.now(datetime.UTC).isoformat()
        with self.path.open("a", encoding="utf-8") as file:
            for name, value, step in rows:
                record = {"name": name, "value": value, "step": step, "time": now}
                file.write(json.dumps(record) + "\n")


def flat_hyperparameters(params: argparse.Namespace | Mapping[str, Any]) -> dict[str, str]:
    """hi-ml's hyperparameters: nested dicts and Namespaces flattened to `a/b`, values as text."""
    flat: dict[str, str] = {}

    def add(prefix: str, value: Any) -> None:
        if isinstance(value, argparse.Namespace):
            value = vars(value)
        if isinstance(value, Mapping) and (value or not prefix):
            for key, inner in value.items():
                add(f"{prefix}/{key}" if prefix else str(key), inner)
            return
        if isinstance(value, torch.Tensor) and value.numel() == 1:
            value = value.item()
        flat[prefix] = str(value)

    add("", params)
    return flat


def log_on_epoch(
    module: LightningModule,
    name: str | None = None,
    value: Any | None = None,
    metrics: Mapping[str, Any] | None = None,
    reduce_fx: Callable[..., Any] = torch.mean,
    sync_dist: bool | None = None,
    sync_dist_op: Any = "mean",
) -> None:
    """Logs metrics once per epoch, reduced over the epoch's steps (default: their mean).

    hi-ml's function for Lightning 2. The caller's `metrics` is not changed (hi-ml adds
    `name` to it). Plain numbers become float tensors on the module's device, so that they can
    be synchronised across processes.

    Args:
        module: The LightningModule logging (during training, validation or testing).
        name: A metric's name; given with `value`.
        value: That metric's value.
        metrics: More metrics, {name: value}.
        reduce_fx: How the per-step values of an epoch become one.
        sync_dist: Whether to synchronise across processes; by default when there are several.
        sync_dist_op: hi-ml 0.1's argument, which Lightning 2 removed: accepted and ignored.

    Raises:
        InvalidInputError: If only one of `name` and `value` is given, or the module is not
            attached to a Trainer.
    """
    if (name is None) != (value is None):
        raise InvalidInputError(
            "log_on_epoch: both or neither of 'name' and 'value' must be provided "
            f"(got name={name!r}, value={value!r}); several metrics go in metrics={{...}}"
        )
    trainer = _trainer_of(module, "log_on_epoch")
    is_sync_dist = trainer.world_size > 1 if sync_dist is None else sync_dist
    logged = dict(metrics or {})
    if name is not None:
        logged[name] = value
    as_tensors = {
        key: torch.tensor(v, dtype=torch.float, device=module.device)
        if isinstance(v, numbers.Number)
        else v
        for key, v in logged.items()
    }
    module.log_dict(
        as_tensors, on_epoch=True, on_step=False, sync_dist=is_sync_dist, reduce_fx=reduce_fx
    )


def log_learning_rate(module: LightningModule, name: str = "learning_rate") -> None:
    """Logs the learning rates of the module's schedulers, once per epoch.

    One scheduler with one rate is logged as `name`; otherwise each rate as
    `name/<scheduler index>/<rate index>` (hi-ml's names).

    Raises:
        InvalidInputError: If the module has no learning rate scheduler (it is not training, or
            its `configure_optimizers` returns none).
    """
    _trainer_of(module, "log_learning_rate")
    schedulers = module.lr_schedulers()
    if schedulers is None:
        raise InvalidInputError(
            "log_learning_rate: learning rate logging can only be used during training, with a "
            "learning rate scheduler returned by configure_optimizers"
        )
    listed = schedulers if isinstance(schedulers, list) else [schedulers]
    single = not isinstance(schedulers, list) and len(listed[0].get_last_lr()) == 1
    rates = {
        (name if single else f"{name}/{i}/{j}"): rate
        for i, scheduler in enumerate(listed)
        for j, rate in enumerate(scheduler.get_last_lr())
    }
    log_on_epoch(module, metrics=rates)


def _trainer_of(module: LightningModule, caller: str) -> Any:
    try:
        return module.trainer
    except RuntimeError as error:  # Lightning 2: "... is not attached to a `Trainer`."
        raise InvalidInputError(
            f"{caller}: the module is not attached to a Trainer; call it from the module's "
            "training_step, validation_step or an epoch hook while Trainer.fit runs"
        ) from error


def _say_nothing_is_logged() -> None:
    global _said_nothing_is_logged
    if not _said_nothing_is_logged:
        _said_nothing_is_logged = True
        print(
            "AzureMLLogger will not write any logs because it is running outside any run, and "
            "the 'enable_logging_outside_azure_ml' flag is set to False",
            flush=True,
        )
