"""Which runs a command's PATTERNs name (seed 003's `aml` tool: one job or many).

A pattern is, in this order:

- `all`: every run in the workspace;
- a folder, or a glob or prefix of folders (it holds a `/`, or names a job folder: one holding
  `most_recent_run.txt`): each folder's `most_recent_run.txt` gives a recovery id (a folder
  written with a `/` without one is an error; a bare name of such a folder, say the `./<run id>`
  `himl results` downloads into, is matched as a name);
- otherwise it is matched against each run's run id, recovery id (`experiment:run_id`),
  experiment, display name and tags (`key=value`, or the value alone): by glob when it holds
  `*`, `?` or `[`, else by prefix.

A command on one run (`himl logs`, `himl results`) takes a run id or recovery id as that run
alone (`select_run`), even where other runs' names start with it.

(`himl-download` and `himl-tb` take hi-ml's selector flags instead: `himl_tasks.cli.run_selection`.)
"""

from __future__ import annotations

import fnmatch
import glob
from collections.abc import Iterable, Sequence
from pathlib import Path

from himl_tasks.backends.base import Backend
from himl_tasks.errors import InvalidInputError, RunNotFoundError
from himl_tasks.runs import RUN_RECOVERY_FILE, ListedRun, RunRef, read_most_recent_run

GLOB_CHARACTERS = "*?["


def select_runs(
    backend: Backend,
    patterns: Sequence[str],
    *,
    children: bool = False,
    listed: Sequence[ListedRun] | None = None,
) -> list[ListedRun]:
    """The runs the patterns name, oldest first, each once.

    Args:
        backend: The workspace.
        patterns: The patterns (see the module docstring).
        children: Each run is followed by its children not named already (a sweep by its
            trials), from the same listing of the workspace.
        listed: The workspace's runs, when the caller listed them already (else listed here).

    Raises:
        InvalidInputError: A malformed pattern (empty, an unclosed `[`), or a folder without
            `most_recent_run.txt` (checked for every pattern before the workspace is read).
        RunNotFoundError: A pattern matched no run; the message names the workspace.
    """
    for pattern in patterns:
        check_pattern(pattern)
    folder_ids = {pattern: _recovery_ids_in_folders(pattern) for pattern in patterns}
    if listed is None:
        listed = backend.list_runs()
    chosen: dict[str, ListedRun] = {}
    for pattern in patterns:
        ids = folder_ids[pattern]
        if ids is not None:
            found = [run for run in listed if run.ref.recovery_id in ids or run.ref.run_id in ids]
        else:
            found = [run for run in listed if matches(run, pattern)]
        if not found:
            raise RunNotFoundError(
                f"no run matches '{pattern}' in {backend.workspace_description()}"
            )
        chosen.update((run.ref.run_id, run) for run in found)
    order = {run.ref.run_id: index for index, run in enumerate(listed)}
    runs = sorted(chosen.values(), key=lambda run: order[run.ref.run_id])
    return _with_children(runs, listed) if children else runs


def select_run(backend: Backend, pattern: str) -> RunRef:
    """The one run a pattern names (`himl logs`, `himl results`).

    A job folder's run, or a run id or recovery id the workspace has, is looked up alone
    (`get_run_ref`); only another pattern reads the listing of the whole workspace (on AzureML
    a service call per run). An id that other runs' names start with names its own run.

    Raises:
        InvalidInputError: As `select_runs`, or the pattern names several runs.
        RunNotFoundError: As `select_runs`.
    """
    check_pattern(pattern)
    ids = _recovery_ids_in_folders(pattern)
    if ids is None:
        exact = _run_with_id(backend, pattern)
        names = (
            [exact] if exact else [run.ref.recovery_id for run in select_runs(backend, [pattern])]
        )
    else:
        names = sorted(ids)
    if len(names) > 1:
        shown = ", ".join(names[:5])
        raise InvalidInputError(
            f"'{pattern}' names {len(names)} runs ({shown}{', ...' if len(names) > 5 else ''}): "
            "give one run"
        )
    return backend.get_run_ref(names[0])


def _run_with_id(backend: Backend, pattern: str) -> str | None:
    """The recovery id of the run whose run id or recovery id `pattern` is, None if none is."""
    if pattern == "all" or any(character in pattern for character in GLOB_CHARACTERS):
        return None
    try:
        return backend.get_run_ref(pattern).recovery_id
    except (RunNotFoundError, InvalidInputError):  # not an id, or not one of this workspace
        return None


def check_pattern(pattern: str) -> None:
    """Raises InvalidInputError for a pattern that cannot mean anything."""
    if not pattern.strip():
        raise InvalidInputError("an empty pattern names no run: give a run id, a name or 'all'")
    if pattern.count("[") > pattern.count("]"):
        raise InvalidInputError(f"malformed pattern '{pattern}': a '[' is never closed")


def matches(run: ListedRun, pattern: str) -> bool:
    """Tells whether the pattern names the run (`all`, or one of its names by glob or prefix)."""
    if pattern == "all":
        return True
    names: Iterable[str] = (
        run.ref.run_id,
        run.ref.recovery_id,
        run.ref.experiment,
        run.display_name,
        *(f"{key}={value}" for key, value in run.tags.items()),
        *run.tags.values(),
    )
    if any(character in pattern for character in GLOB_CHARACTERS):
        return any(fnmatch.fnmatchcase(name, pattern) for name in names)
    return any(name.startswith(pattern) for name in names if name)


def _recovery_ids_in_folders(pattern: str) -> set[str] | None:
    """The recovery ids the folders a pattern names hold; None if it names no folder."""
    if pattern == "all" or ("/" not in pattern and not _is_file(Path(pattern) / RUN_RECOVERY_FILE)):
        return None
    if _is_dir(Path(pattern)):
        folders = [Path(pattern)]
    else:
        written = pattern if any(c in pattern for c in GLOB_CHARACTERS) else pattern + "*"
        # glob.glob takes a pattern written as a path, absolute or relative; Path.glob cannot.
        found = glob.glob(written)  # noqa: PTH207
        folders = sorted(Path(each) for each in found if _is_dir(Path(each)))
    if not folders:
        raise RunNotFoundError(f"no folder matches '{pattern}'")
    ids = set()
    for folder in folders:
        recovery_file = folder / RUN_RECOVERY_FILE
        if not recovery_file.is_file():
            raise InvalidInputError(
                f"{folder} holds no {RUN_RECOVERY_FILE}: it is not a job's folder "
                "(a submission writes that file beside the script)"
            )
        ids.add(read_most_recent_run(recovery_file))
    return ids


def _is_dir(path: Path) -> bool:
    """Path.is_dir, False for a path the system cannot even look up (a name too long)."""
    try:
        return path.is_dir()
    except (OSError, ValueError):
        return False


def _is_file(path: Path) -> bool:
    """Path.is_file, False for a path the system cannot even look up (a name too long)."""
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False


def _with_children(runs: Sequence[ListedRun], listed: Sequence[ListedRun]) -> list[ListedRun]:
    """The runs, each followed by its children in `listed` not named already."""
    named = {run.ref.run_id for run in runs}
    children: dict[str, list[ListedRun]] = {}
    for run in listed:
        if run.parent_run_id is not None and run.ref.run_id not in named:
            children.setdefault(run.parent_run_id, []).append(run)
    return [each for run in runs for each in (run, *children.get(run.ref.run_id, []))]
