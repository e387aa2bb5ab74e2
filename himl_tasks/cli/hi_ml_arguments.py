"""hi-ml's console-script flags, spelled as hi-ml spells them, and how such a script exits.

`himl-download` and `himl-tb` share the run selectors and `--config_file`; each adds its own
flags to `selector_parser()`. `run_console_script` turns a himl-tasks error into one line on
stderr and the exit code `himl` gives it too (`himl_tasks.cli.exit_codes`), never a traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from pathlib import Path

from himl_tasks.backends.base import Backend
from himl_tasks.cli.exit_codes import EXIT_INTERRUPTED, exit_code_of
from himl_tasks.cli.run_selection import RunSelection, parse_tags
from himl_tasks.cli.workspace import backend_for_command
from himl_tasks.errors import HimlError


def selector_parser(prog: str, description: str) -> argparse.ArgumentParser:
    """A parser with hi-ml's run selectors and `--config_file`."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    runs = parser.add_argument_group(
        "which runs (one of these; without any, most_recent_run.txt here or in a parent folder)"
    )
    runs.add_argument("--run_ids", nargs="+", default=[], metavar="RUN_ID", help="run ids")
    runs.add_argument(
        "--run_recovery_ids",
        nargs="+",
        default=[],
        metavar="EXPERIMENT:RUN_ID",
        help="run recovery ids, as most_recent_run.txt holds them",
    )
    runs.add_argument("--experiment", help="the latest run(s) of this experiment")
    runs.add_argument(
        "--tags",
        action="append",
        default=[],
        metavar="NAME[=VALUE]",
        help="with --experiment: only runs with this tag (and value); repeat for several",
    )
    runs.add_argument(
        "--latest_run_file",
        type=Path,
        help="a most_recent_run.txt (written on submission), or a folder holding one",
    )
    parser.add_argument(
        "--config_file",
        help="an AzureML config.json, a local workspace folder (or a local datastores file), "
        "or a saved workspace block's name (local-workspace/NAME, azureml-workspace/NAME, read "
        "from the Prefect API at PREFECT_API_URL); default: the library's order (a config.json "
        "here or above, the HIML_* variables, else $HIML_HOME or ./.himl)",
    )
    return parser


def selection_from(args: argparse.Namespace, *, num_runs: int | None = None) -> RunSelection:
    """The `RunSelection` of parsed flags (checked as it is made)."""
    return RunSelection(
        run_ids=tuple(args.run_ids),
        run_recovery_ids=tuple(args.run_recovery_ids),
        experiment=args.experiment,
        tags=parse_tags(args.tags),
        num_runs=num_runs,
        latest_run_file=args.latest_run_file,
    )


def workspace_from(args: argparse.Namespace) -> Backend:
    """The workspace: `--config_file` as `himl --workspace` reads it, else the library's order."""
    return backend_for_command(args.config_file)


def run_console_script(prog: str, body: Callable[[], int]) -> int:
    """Runs a script's body; a himl-tasks error is one line on stderr and its exit code."""
    logging.basicConfig(level=logging.WARNING, format=f"{prog}: %(message)s")
    try:
        return body()
    except HimlError as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        return exit_code_of(error)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
