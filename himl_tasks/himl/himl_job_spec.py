"""hi-ml's defaults for the `JobSpec` `submit_to_azure_if_needed` makes from its parameters."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from himl_tasks.errors import InvalidInputError
from himl_tasks.job_spec import check_environment_variables
from himl_tasks.job_variables import DEFAULT_ENVIRONMENT_VARIABLES
from himl_tasks.secret_reference import SecretReference

PathOrString = Path | str


def environment_variables_for_runs(
    given: Mapping[str, str | SecretReference] | None,
) -> dict[str, str | SecretReference]:
    """hi-ml's default variables with the user's over them, checked as a job's are.

    A value may be a `SecretReference`: a submitted job gets the secret and no record of it
    holds the value; a plain run reads it from this process's environment.

    Raises:
        InvalidInputError: For a name a process cannot have, a value that is not text (or a
            `SecretReference`), a NUL byte, or a variable the backends set in every job.
    """
    given = {} if given is None else given
    check_environment_variables(given)
    return {**DEFAULT_ENVIRONMENT_VARIABLES, **given}


def entry_point(entry_script: PathOrString | None, root: Path) -> tuple[Path | None, str | None]:
    """The job's script or module (one of them is None), as hi-ml chooses it.

    Without `entry_script` it is the running script (`sys.argv[0]`, from the current folder),
    or, when it was started as `python -m package.module` from the snapshot root, that module
    (its relative imports need its package; hi-ml ran its file as a script). A relative
    `entry_script` given is taken from the snapshot root, as hi-ml sends it.
    """
    if entry_script is not None:
        return Path(entry_script), None
    running = Path(sys.argv[0]).absolute()
    module = _running_module(running, root)
    return (None, module) if module else (running, None)


def _running_module(running: Path, root: Path) -> str | None:
    """The module this process was started as (`python -m pkg.train`), if the root holds it.

    `__main__.__spec__` names it; it counts only when the running file is where `python -m`
    in the snapshot root finds that name (`<root>/pkg/train.py`), so a script started by
    path, or a module from elsewhere (`python -m pytest`), stays a script.
    """
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    name = getattr(spec, "name", None)
    if not isinstance(name, str) or not name:
        return None
    if running != root.joinpath(*name.split(".")).with_suffix(".py"):
        return None
    return name.removesuffix(".__main__")  # `python -m pkg` runs pkg/__main__.py


def ignored_folders_in(root: Path, folders: Sequence[PathOrString] | None) -> list[str]:
    """Ignored folders as the snapshot root's relative names; an absolute one inside it is fine.

    Raises:
        InvalidInputError: For one folder given as a string (not a list), or a folder outside
            the root.
    """
    if isinstance(folders, str | bytes | os.PathLike):
        # One folder is not a list of them: "data" would ignore "d", "a" and "t".
        raise InvalidInputError(
            f"ignored_folders must be a list of folders, e.g. ['data'], not {folders!r}"
        )
    return [_inside(root, folder) for folder in folders or ()]


def _inside(root: Path, folder: PathOrString) -> str:
    """An ignored folder as the snapshot root's relative name (hi-ml writes them as given)."""
    path = Path(folder)
    relative = path.relative_to(root) if path.is_relative_to(root) else path
    if relative.is_absolute() or ".." in relative.parts:
        raise InvalidInputError(
            f"ignored_folders entry {path} is outside the snapshot root {root}: name "
            "folders inside it (relative names are taken from it)"
        )
    return relative.as_posix()
