"""What a job sees of its run: the run itself, and where its data is."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol


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

    @property
    def sdk_run(self) -> Any:
        """The backend SDK's own run object (AzureML: `Run.get_context()`), or None.

        hi-ml's `RUN_CONTEXT` is that object where there is one, so that a script keeps every
        method of it; a backend without one (the local backend) returns None.
        """
        ...

    def log_metrics(self, values: Mapping[str, float | str], step: int | None = None) -> None:
        """Records metric values: numbers, or text (a hyperparameter, a note) kept as text."""
        ...

    def log_image(self, name: str, path: Path) -> None:
        """Keeps an image file with the run, under the name `name`."""
        ...


@dataclass(frozen=True)
class AzureRunInfo:
    """Where a script finds its data and writes its results (hi-ml's `AzureRunInfo`).

    Attributes:
        input_datasets: A folder per input dataset, in the job spec's order (None outside a
            job when the config has no `local_folder`).
        output_datasets: A folder per output dataset, likewise.
        output_folder: Where to write results kept with the run (`outputs/`).
        logs_folder: Where to write logs kept with the run (`logs/`).
        run: hi-ml's run inside a job, `RUN_CONTEXT` (which is azureml's own Run on AzureML),
            from `get_run_info` and `submit_to_azure_if_needed` alike; None in a plain
            `python script.py`. The backend's `RunContext` is `current_run()`.
        is_running_in_azure_ml: True inside an AzureML run.
        mount_contexts: hi-ml's mounts started for a plain run's inputs, which a script may
            stop; always empty here: himl-tasks downloads a plain run's inputs (a mount it
            starts lives as long as the process), and a job's mounts are the platform's.

    It is frozen, where hi-ml's is a plain mutable dataclass: the one description of a run's
    data that every part of a script reads, made once (hi-ml's own code never assigns to it).
    Keyword construction, as hi-ml writes it, works the same; `mount_contexts` comes last here
    (third in hi-ml), so that the fields without a default come first.
    """

    input_datasets: list[Path | None]
    output_datasets: list[Path | None]
    output_folder: Path | None
    logs_folder: Path | None
    run: Any = None
    is_running_in_azure_ml: bool = False
    mount_contexts: list[Any] = field(default_factory=list)
