"""Which runs hi-ml's console scripts act on: hi-ml's selectors, checked once, then looked up.

hi-ml's `himl-download` and `himl-tb` take one of `--run_ids`, `--run_recovery_ids`,
`--experiment` (with `--tags` and `--num_runs`) or `--latest_run_file`; with none of them they
read `most_recent_run.txt` from the current folder or a parent, as hi-ml does. Here giving two
selectors at once is an error rather than a silent precedence. (`himl`'s PATTERNs are read by
`himl_tasks.cli.run_patterns`; a run not found is said the same way by both.)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from himl_tasks.backends.base import Backend
from himl_tasks.backends.workspace_discovery import find_project_file
from himl_tasks.errors import InputPathNotFoundError, InvalidInputError, RunNotFoundError
from himl_tasks.runs import RUN_RECOVERY_FILE, RunRef, read_most_recent_run


@dataclass(frozen=True)
class RunSelection:
    """The runs a command was asked for, as hi-ml's flags say them.

    Attributes:
        run_ids: Run ids (`--run_ids`).
        run_recovery_ids: Recovery ids, `experiment:run_id` (`--run_recovery_ids`).
        experiment: The experiment whose latest runs are meant (`--experiment`).
        tags: With `experiment`: tags a run must carry; a value of None means any value.
        num_runs: With `experiment`: how many of its latest runs.
        latest_run_file: A `most_recent_run.txt`, or a folder holding one.
    """

    run_ids: tuple[str, ...] = ()
    run_recovery_ids: tuple[str, ...] = ()
    experiment: str | None = None
    tags: tuple[tuple[str, str | None], ...] = ()
    num_runs: int | None = None
    latest_run_file: Path | None = None

    def __post_init__(self) -> None:
        given = [
            flag
            for flag, value in (
                ("--run_ids", self.run_ids),
                ("--run_recovery_ids", self.run_recovery_ids),
                ("--experiment", self.experiment),
                ("--latest_run_file", self.latest_run_file),
            )
            if value
        ]
        if len(given) > 1:
            raise InvalidInputError(
                f"{' and '.join(given)} both select runs: give one of --run_ids, "
                "--run_recovery_ids, --experiment, --latest_run_file"
            )
        if self.experiment is None and (self.tags or self.num_runs is not None):
            # Given, not truthy: --num_runs 0 is given (the message named no flag).
            given_filters = (("--tags", bool(self.tags)), ("--num_runs", self.num_runs is not None))
            flags = [flag for flag, given in given_filters if given]
            raise InvalidInputError(
                f"{' and '.join(flags)} filter the runs of an experiment: give --experiment too"
            )
        if self.num_runs is not None and self.num_runs < 1:
            raise InvalidInputError(f"--num_runs must be 1 or more, not {self.num_runs}")
        if self.experiment is not None and not self.experiment.strip():
            raise InvalidInputError("--experiment must name an experiment, not be empty")


def parse_tags(values: list[str]) -> tuple[tuple[str, str | None], ...]:
    """Reads `--tags` values: `name=value` (that value) or `name` (the tag with any value).

    Raises:
        InvalidInputError: For an empty tag name.
    """
    tags: list[tuple[str, str | None]] = []
    for value in values:
        name, equals, wanted = value.partition("=")
        if not name.strip():
            raise InvalidInputError(f"--tags '{value}' has no tag name: give name=value or name")
        tags.append((name.strip(), wanted if equals else None))
    return tuple(tags)


def runs_of_selection(
    backend: Backend, selection: RunSelection, *, cwd: Path | None = None
) -> list[RunRef]:
    """The runs the selection names, looked up in `backend`'s workspace, in the order given.

    Raises:
        RunNotFoundError: A run id names no run in the workspace (the message names it), the
            experiment has no such run, or no `most_recent_run.txt` was given or found.
        InputPathNotFoundError: `--latest_run_file` does not exist, or is a folder without
            `most_recent_run.txt`.
    """
    if selection.run_ids or selection.run_recovery_ids:
        return [backend.get_run_ref(i) for i in (*selection.run_ids, *selection.run_recovery_ids)]
    if selection.experiment is not None:
        return _latest_runs_of_experiment(backend, selection)
    return [backend.get_run_ref(read_most_recent_run(_recovery_file(selection, cwd)))]


def _recovery_file(selection: RunSelection, cwd: Path | None) -> Path:
    given = selection.latest_run_file
    if given is not None:
        if given.is_dir():
            if not (given / RUN_RECOVERY_FILE).is_file():
                raise InputPathNotFoundError(
                    f"folder {given} has no {RUN_RECOVERY_FILE}: no run was submitted from it; "
                    "give the file itself, or a folder a job was submitted from"
                )
            return given / RUN_RECOVERY_FILE
        if not given.exists():
            raise InputPathNotFoundError(f"--latest_run_file {given} does not exist")
        return given
    start = (cwd or Path.cwd()).absolute()
    found = find_recovery_file(start)
    if found is None:
        raise RunNotFoundError(
            f"no run given and no {RUN_RECOVERY_FILE} in {start} or its parents: give "
            "--run_ids, --run_recovery_ids, --experiment or --latest_run_file"
        )
    return found


def find_recovery_file(start: Path) -> Path | None:
    """`most_recent_run.txt` in `start` or a parent, up to the project root on PYTHONPATH.

    The same folders the library searches for a project's `config.json` (`search_folders`).
    """
    return find_project_file(RUN_RECOVERY_FILE, start, os.environ.get("PYTHONPATH", ""))


def _latest_runs_of_experiment(backend: Backend, selection: RunSelection) -> list[RunRef]:
    """The experiment's latest top-level runs with the tags asked for, newest first.

    As azureml's `Experiment.get_runs` (hi-ml's source): children (a sweep's trials) are left
    out, and a tag given without a value matches any value.
    """
    experiment = selection.experiment or ""
    wanted = [
        listed
        for listed in reversed(backend.list_runs(experiment))
        if listed.parent_run_id is None
        and all(
            name in listed.tags and (value is None or listed.tags[name] == value)
            for name, value in selection.tags
        )
    ]
    if not wanted:
        tags = ", ".join(n if v is None else f"{n}={v}" for n, v in selection.tags)
        raise RunNotFoundError(
            f"no run in experiment '{experiment}'{f' with tags {tags}' if tags else ''} in "
            f"{backend.workspace_description()}"
        )
    return [listed.ref for listed in wanted[: selection.num_runs or 1]]
