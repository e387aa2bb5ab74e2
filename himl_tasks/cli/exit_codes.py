"""What every console script's exit code means (`himl`, `himl-download`, `himl-tb`).

0 done; 1 the command could not do what was asked (no run matched, a run or file was not
found, a download failed, a wait ran out, a prompt was declined); 2 bad usage, found before
anything was done (a malformed pattern or flag, an unknown workspace, a folder without
most_recent_run.txt, a port in use; argparse and typer use 2 for bad flags too); 130
interrupted (Ctrl-C).
"""

from __future__ import annotations

from himl_tasks.errors import ConfigurationError, HimlError, InvalidInputError

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def exit_code_of(error: HimlError) -> int:
    """The exit code for a himl-tasks error: bad input or settings 2, anything else 1."""
    if isinstance(error, InvalidInputError | ConfigurationError):
        return EXIT_USAGE
    return EXIT_FAILURE
