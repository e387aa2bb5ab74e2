"""`himl-download`: hi-ml's console script that downloads runs' files, on any backend.

Each run's files land in `--output_dir/<run id>/`, keeping their names in the run
(`outputs/model.pt`, `logs/...`), as hi-ml's script puts them. They come through the backend's
transfer engine: written under a temporary name, MD5-checked against the datastore's checksum,
a file already there with the same bytes not fetched again.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from himl_tasks.cli.hi_ml_arguments import (
    run_console_script,
    selection_from,
    selector_parser,
    workspace_from,
)
from himl_tasks.cli.run_selection import select_runs
from himl_tasks.errors import InvalidInputError

PROG = "himl-download"


def build_parser() -> argparse.ArgumentParser:
    """himl-download's flags: hi-ml's run selectors, `--output_dir`, `--prefix`."""
    parser = selector_parser(PROG, "Download the files of AzureML (or local) runs.")
    parser.add_argument(
        "--output_dir",
        type=Path,
        default=Path("outputs"),
        help="where to put the files, one folder per run (default: ./outputs)",
    )
    parser.add_argument(
        "--prefix",
        default="",
        help="only files whose name in the run starts with this (e.g. outputs/checkpoints)",
    )
    parser.add_argument(
        "--num_runs", type=int, help="with --experiment: how many of its latest runs (default 1)"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of `himl-download`; returns the exit code."""
    args = build_parser().parse_args(argv)
    return run_console_script(PROG, lambda: _download(args))


def _download(args: argparse.Namespace) -> int:
    selection = selection_from(args, num_runs=args.num_runs)
    output_dir: Path = args.output_dir
    if output_dir.exists() and not output_dir.is_dir():
        raise InvalidInputError(f"--output_dir {output_dir} is a file; give a folder")
    backend = workspace_from(args)
    refs = select_runs(backend, selection)
    for ref in refs:
        destination = output_dir / ref.run_id
        report = backend.download_files(ref, args.prefix, destination, validate_checksum=True)
        checked = report.files - len(report.unverified)
        line = (
            f"run {ref}: {report.files} file(s), {report.bytes} bytes -> {destination} "
            f"({checked} MD5-checked"
        )
        if report.skipped_identical:
            line += f", {report.skipped_identical} already there"
        if report.skipped_existing:
            line += f", {report.skipped_existing} kept: a different local file is in the way"
        print(line + ")")
    return 0


def console_main() -> None:
    """The console script (`[project.scripts]`)."""
    sys.exit(main())


if __name__ == "__main__":
    console_main()
