"""hi-ml's `RUN_CONTEXT`: the current run, for a script to log to, on every backend.

hi-ml sets `RUN_CONTEXT = Run.get_context()` when `health_azure` is imported. Here it is a proxy
that finds the current run on each use (never at import: importing himl_tasks loads no SDK).
It is hi-ml's run object, the `run` of `get_run_info()` inside a job; the backend's own context
under it (`RunContext`: run id, attempt, `log_metrics`) is `current_run()`. What it is:

- inside an AzureML run, it is azureml's own `Run.get_context()` object: every method of it
  (`upload_file`, `tag`, ...) works, and `hasattr(RUN_CONTEXT, "experiment")` is True;
- inside an AzureML SDK v2 job himl-tasks submitted, it is the v2 in-job half's run: the
  members of azureml's `Run` a script uses (`log...`, `experiment`, `tag`, `upload_file`, ...)
  over the job's MLflow run, and `hasattr(RUN_CONTEXT, "experiment")` is True too;
- inside a local run, `log`, `log_list`, `log_row`, `log_table` and `log_image` record with the
  run (`LocalBackend.get_metrics`, the run's `logs/images/`), and `id` is the run's id;
- outside any run, it behaves like azureml's offline run: it prints what would be logged and
  records nothing.

Only AzureML's run has an `experiment`: hi-ml's `is_running_in_azure_ml(RUN_CONTEXT)` asks for
that attribute. Only the process of global rank zero logs, as `AzureMLLogger` and `log_metrics`
do; the other processes of a distributed job log nothing.

Values: numbers are kept as numbers, anything else as its text (hi-ml users log hyperparameter
tables and notes); a row or a table is kept as metric series by `himl_tasks.metric_tables`' rule
(a `step`/`value` table is one series, any other one series per column, `<name>/<column>`).
"""

from __future__ import annotations

import os
import tempfile
import threading
import uuid
from collections.abc import Mapping, Sequence
from inspect import isgeneratorfunction
from pathlib import Path
from types import GeneratorType
from typing import Any

from himl_tasks import job_variables
from himl_tasks.errors import InputPathNotFoundError, InvalidInputError
from himl_tasks.metric_tables import metric_value, table_series, whole_step
from himl_tasks.runtime.distributed import is_global_rank_zero
from himl_tasks.runtime.in_job_platform import current_run
from himl_tasks.runtime.run_context import RunContext

# What identifies the run a process is in: the proxy finds its run again when one changes.
_RUN_VARIABLES = (
    job_variables.IN_JOB,
    job_variables.WORKSPACE,
    job_variables.RUN_ID,
    job_variables.ATTEMPT,
    job_variables.AZUREML_RUN_ID,
    job_variables.MLFLOW_TRACKING_URI,
    job_variables.MLFLOW_RUN_ID,
)


class OfflineRun:
    """The run of a script that runs outside any run: it prints what is logged, as azureml's.

    azureml's offline run (`Run.get_context()` in a plain process) prints "Attempted to log
    <kind> metric <name>:" and the value; the same words are printed here, so a script's output
    reads the same with either. It has no `experiment`: it is not running in AzureML.
    """

    def __init__(self) -> None:
        self.id = f"OfflineRun_{uuid.uuid4()}"

    def log(self, name: str, value: Any, description: str = "", step: int | None = None) -> None:
        """Prints the value."""
        _attempted("scalar", name, value)

    def log_list(self, name: str, value: Sequence[Any], description: str = "") -> None:
        """Prints the list."""
        _attempted("list", name, value)

    def log_row(self, name: str, description: str | None = None, **kwargs: Any) -> None:
        """Prints the row."""
        _attempted("row", name, kwargs)

    def log_table(
        self, name: str, value: Mapping[str, Sequence[Any]], description: str = ""
    ) -> None:
        """Prints the table."""
        _attempted("table", name, value)

    def log_image(
        self, name: str, path: str | Path | None = None, plot: Any = None, description: str = ""
    ) -> None:
        """Prints the image's path (or plot)."""
        _attempted("image", name, plot or path)

    def flush(self) -> None:
        """Prints that there is nothing to flush to."""
        print(f"Attempted to flush run with id {self.id}", flush=True)


class RecordingRun:
    """hi-ml's run methods over a backend's `RunContext`, for a backend with no SDK run object.

    Rows are numbered per name within the process: `log_row` without a `step` column puts the
    n-th row of a name at step n.
    """

    def __init__(self, context: RunContext, rows_logged: dict[str, int]) -> None:
        self.context = context
        self.rows_logged = rows_logged

    @property
    def id(self) -> str:
        """The run's id."""
        return self.context.run_id

    def log(self, name: str, value: Any, description: str = "", step: int | None = None) -> None:
        """Records one value (at `step`, if given)."""
        self.context.log_metrics({name: metric_value(value)}, step=step)

    def log_list(self, name: str, value: Sequence[Any], description: str = "") -> None:
        """Records a list of values as a series at steps 0 to n-1."""
        self._record([(name, metric_value(v), step) for step, v in enumerate(value)])

    def log_row(self, name: str, description: str | None = None, **kwargs: Any) -> None:
        """Records one row: a series per column, at the row's number (or its `step` column)."""
        first_row = self.rows_logged.get(name, 0)
        self.rows_logged[name] = first_row + 1
        self._record(table_series(name, {column: [v] for column, v in kwargs.items()}, first_row))

    def log_table(
        self, name: str, value: Mapping[str, Sequence[Any]], description: str = ""
    ) -> None:
        """Records a table (column name -> values): a series per column, row n at step n."""
        self._record(table_series(name, value))

    def log_image(
        self, name: str, path: str | Path | None = None, plot: Any = None, description: str = ""
    ) -> None:
        """Keeps an image file, or a matplotlib figure saved as PNG, among the run's files."""
        if path is not None:
            self.context.log_image(name, Path(path))
            return
        with tempfile.TemporaryDirectory(prefix="himl-image-") as scratch:
            image = Path(scratch) / "image.png"
            plot.savefig(image, format="png")
            self.context.log_image(name, image)

    def flush(self) -> None:
        """Does nothing: every value is recorded when it is logged."""

    def _record(self, rows: Sequence[tuple[str, float | str, int | None]]) -> None:
        by_step: dict[int | None, dict[str, float | str]] = {}
        for name, value, step in rows:
            by_step.setdefault(step, {})[name] = value
        for step, values in by_step.items():
            self.context.log_metrics(values, step=step)


class RunContextProxy:
    """hi-ml's `RUN_CONTEXT`: the current run, found again whenever the process's run changes.

    `log`, `log_list`, `log_row`, `log_table`, `log_image`, `flush` and `id` work on every
    backend; any other attribute is the AzureML run's own (an AttributeError elsewhere).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._found: tuple[tuple[str | None, ...], Any] | None = None
        self._rows_logged: dict[str, int] = {}

    @property
    def id(self) -> str:
        """The run's id (`OfflineRun_<uuid>` outside any run, as azureml's)."""
        return str(self._run().id)

    def log(self, name: str, value: Any, description: str = "", step: int | None = None) -> None:
        """Logs one value of a metric: a number, or text (kept as text).

        Args:
            name: The metric's name.
            value: Its value.
            description: A description (AzureML keeps it; the local backend does not).
            step: The step (epoch, iteration) it belongs to, if any.

        Raises:
            InvalidInputError: If `step` is not a whole number (a bool is not one), or `value`
                is a list, range or generator (`log_list` logs those).
        """
        if isinstance(value, list | range | GeneratorType) or isgeneratorfunction(value):
            # azureml's Run.log refuses these (azureml/core/run.py); the local run kept their
            # text ("[1, 2]"), so a script that ran with --himl-local failed on AzureML.
            raise InvalidInputError(
                f"log({name!r}, ...) logs one value, not a {type(value).__name__}: log a "
                f"series with log_list({name!r}, [...])"
            )
        step = whole_step(step, f"log({name!r}, ..., step=...)")
        if not is_global_rank_zero():
            return
        run = self._run()
        if step is None:  # azureml's offline run takes no step
            run.log(name, value, description=description)
        else:
            run.log(name, value, description=description, step=step)

    def log_list(self, name: str, value: Sequence[Any], description: str = "") -> None:
        """Logs a list of values of a metric: a series at steps 0 to n-1."""
        if is_global_rank_zero():
            self._run().log_list(name, value, description=description)

    def log_row(self, name: str, description: str | None = None, **kwargs: Any) -> None:
        """Logs one row of a table, its columns as keywords (`log_row("loss", epoch=1, x=0.3)`)."""
        if is_global_rank_zero():
            self._run().log_row(name, description=description, **kwargs)

    def log_table(
        self, name: str, value: Mapping[str, Sequence[Any]], description: str = ""
    ) -> None:
        """Logs a table given as {column name: list of values}."""
        if not isinstance(value, Mapping):
            raise InvalidInputError(
                f"log_table({name!r}, ...) takes a table as a dict of columns, "
                f"{{column name: [values]}}, not a {type(value).__name__}"
            )
        if is_global_rank_zero():
            self._run().log_table(name, value, description=description)

    def log_image(
        self, name: str, path: str | Path | None = None, plot: Any = None, description: str = ""
    ) -> None:
        """Logs an image: a file (`path`) or a matplotlib figure or `pyplot` (`plot`).

        Raises:
            InvalidInputError: If neither or both are given, or `plot` cannot save itself as
                an image (it has no `savefig`).
            InputPathNotFoundError: If `path` is not a file.
        """
        if (path is None) == (plot is None):
            raise InvalidInputError(
                f"log_image({name!r}, ...) needs one image: a file as path=, or a matplotlib "
                "figure as plot=, not both"
            )
        if plot is not None and not callable(getattr(plot, "savefig", None)):
            raise InvalidInputError(
                f"log_image({name!r}, plot=...) takes a matplotlib figure (or pyplot): it is "
                f"saved with its savefig(), which a {type(plot).__name__} does not have"
            )
        if path is not None and not Path(path).is_file():
            raise InputPathNotFoundError(
                f"log_image({name!r}, path={str(path)!r}): there is no such file"
            )
        if is_global_rank_zero():
            self._run().log_image(name, path=path, plot=plot, description=description)

    def flush(self) -> None:
        """Makes sure what was logged has reached the run (AzureML sends it in the background)."""
        self._run().flush()

    def __getattr__(self, name: str) -> Any:
        # Only reached for names this class does not define: the SDK run's own methods.
        if name.startswith("__"):
            raise AttributeError(name)
        run = self._run()
        try:
            return getattr(run, name)
        except AttributeError:
            # Still an AttributeError: hasattr(RUN_CONTEXT, "experiment") must stay False.
            where = "outside any run" if isinstance(run, OfflineRun) else "in this run"
            raise AttributeError(
                f"RUN_CONTEXT.{name} is a member of azureml's Run, which a script has only "
                f"inside an AzureML run; {where} RUN_CONTEXT has log, log_list, log_row, "
                "log_table, log_image, flush and id (files written to outputs/ are kept "
                "with the run)"
            ) from None

    def __repr__(self) -> str:
        return f"RUN_CONTEXT({self._run()!r})"

    def _run(self) -> Any:
        """The current run: the SDK's run object, a `RecordingRun`, or an `OfflineRun`."""
        key = tuple(os.environ.get(name) for name in _RUN_VARIABLES)
        with self._lock:
            if self._found is None or self._found[0] != key:
                self._found = (key, self._find_run())
            return self._found[1]

    def _find_run(self) -> Any:
        context = current_run()
        if context is None:
            return OfflineRun()
        self._rows_logged = {}
        return (
            context.sdk_run
            if context.sdk_run is not None
            else RecordingRun(context, self._rows_logged)
        )


def _attempted(kind: str, name: str, value: Any) -> None:
    print(f"Attempted to log {kind} metric {name}:\n{value}", flush=True)


RUN_CONTEXT = RunContextProxy()
"""hi-ml's `RUN_CONTEXT`: the run this process belongs to (see the module's docstring)."""
