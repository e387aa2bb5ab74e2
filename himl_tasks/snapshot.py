"""The snapshot: the files of the user's folder that travel with a job.

A job runs in a copy of its snapshot root. What stays behind: what `.amlignore` excludes (or
`.gitignore` when there is no `.amlignore`, as AzureML does), the job's `ignored_folders`, and
defaults that never travel: version control, virtual environments, caches, the local workspace,
credential files, and the root's own `outputs/` and `logs/` (a job's outputs are its own, not
leftovers from a laptop run). The user's ignore files are read, never changed.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pathspec

from himl_tasks.errors import InputPathNotFoundError, InvalidInputError, SnapshotTooLargeError

# AzureML's limits for a job snapshot.
MAX_SNAPSHOT_BYTES = 300 * 1024 * 1024
MAX_SNAPSHOT_FILES = 2000

IGNORE_FILE = ".amlignore"
FALLBACK_IGNORE_FILE = ".gitignore"

# Credentials never reach a job, whatever the ignore files say.
CREDENTIAL_IGNORES = (
    ".env",
    ".env.*",
    "config.json",
    ".azureml/",
    ".azure/",
    "*.pem",
    "*.pfx",
    "*.key",
    ".netrc",
    "id_rsa*",
    "id_ed25519*",
)
DEFAULT_IGNORES = (
    ".git/",
    ".hg/",
    ".svn/",
    "__pycache__/",
    "*.pyc",
    ".mypy_cache/",
    ".pytest_cache/",
    ".ruff_cache/",
    ".ipynb_checkpoints/",
    ".venv/",
    "venv/",
    ".conda/",
    ".himl/",
    ".himl-state/",
    "node_modules/",
    "/outputs/",
    "/logs/",
    "most_recent_run.txt",  # written by each submission; not part of the job
)
_NEVER = pathspec.GitIgnoreSpec.from_lines(CREDENTIAL_IGNORES)


@dataclass(frozen=True)
class SnapshotFile:
    """One file of the snapshot: its path relative to the root ('/'-separated) and size."""

    relative: str
    size: int


@dataclass(frozen=True)
class Snapshot:
    """The files chosen from a root folder.

    Attributes:
        root: The folder they come from.
        files: The chosen files, sorted by name.
    """

    root: Path
    files: tuple[SnapshotFile, ...]
    virtual_environments: tuple[str, ...] = ()

    @property
    def extra_ignore_rules(self) -> list[str]:
        """Rules for what was left out by looking rather than by a rule.

        These are virtual environments (folders holding a `pyvenv.cfg`) under names that no
        default rule covers.
        """
        return [f"/{folder}/" for folder in self.virtual_environments]

    @property
    def total_bytes(self) -> int:
        """Sum of the files' sizes."""
        return sum(f.size for f in self.files)

    def contains(self, path: Path) -> bool:
        """Tells whether a file (absolute, or relative to the root) travels with the job."""
        relative = _path_in_root(self.root, self.root / path)
        return relative is not None and any(f.relative == relative.as_posix() for f in self.files)

    def entry_script(self, script: Path) -> str:
        """The entry script's path in the snapshot ('/'-separated).

        Raises:
            InvalidInputError: If the script is missing, outside the root, or excluded by the
                ignore rules.
        """
        relative = entry_script_in_root(self.root, script)
        if not self.contains(relative):
            raise InvalidInputError(
                f"the entry script {relative} is excluded from the snapshot by the ignore "
                "rules (.amlignore, ignored_folders or the defaults)"
            )
        return relative.as_posix()

    def copy_to(self, destination: Path) -> None:
        """Copies the files into `destination` (created), keeping their relative paths.

        Raises:
            InputPathNotFoundError: A file selected for the snapshot is gone since.
        """
        destination.mkdir(parents=True, exist_ok=True)
        made: set[Path] = set()
        for item in self.files:
            target = destination / item.relative
            if target.parent not in made:
                target.parent.mkdir(parents=True, exist_ok=True)
                made.add(target.parent)
            with self.gone_since_selected(item.relative):
                shutil.copy2(self.root / item.relative, target)

    @contextlib.contextmanager
    def gone_since_selected(self, relative: str) -> Iterator[None]:
        """Turns a selected file's absence into the error that says to plan again.

        Raises:
            InputPathNotFoundError: The file is gone since the snapshot was selected.
        """
        try:
            yield
        except FileNotFoundError as error:
            if error.filename != str(self.root / relative):
                raise
            raise InputPathNotFoundError(
                f"{relative} was selected for the job's snapshot from {self.root} and is gone "
                "since: the folder changed after the job was planned; plan the job again"
            ) from None


def snapshot_digest(snapshot: Snapshot) -> str:
    """A digest of the snapshot's file names and contents (where its root is plays no part).

    Raises:
        InputPathNotFoundError: A file selected for the snapshot is gone since.
    """
    digest = hashlib.sha256()
    for item in snapshot.files:
        digest.update(item.relative.encode() + b"\0")
        with (
            snapshot.gone_since_selected(item.relative),
            (snapshot.root / item.relative).open("rb") as source,
        ):
            for chunk in iter(lambda: source.read(1 << 20), b""):
                digest.update(chunk)
        digest.update(b"\0")
    return digest.hexdigest()


def entry_script_in_root(root: Path, script: Path) -> Path:
    """The entry script's path relative to the snapshot root, checked without reading the root.

    What can be known of a job's files before its snapshot is selected, e.g. before a local
    workspace is made for it.

    Raises:
        InvalidInputError: If the root is not a folder, or the script is not a file inside it.
        InputPathNotFoundError: If the script does not exist.
    """
    if not root.is_dir():
        raise InvalidInputError(f"the snapshot root {root} is not a folder")
    if not script.exists():
        raise InputPathNotFoundError(f"the entry script {script} does not exist")
    if not script.is_file():
        raise InvalidInputError(f"the entry script {script} is not a file")
    relative = _path_in_root(root, script)
    if relative is None:
        raise InvalidInputError(
            f"the entry script {script} is outside the snapshot root {root}; move it "
            "inside, or choose a snapshot_root that contains it"
        )
    return relative


def _path_in_root(root: Path, path: Path) -> Path | None:
    """`path` relative to `root`, or None when it is outside.

    First as written: a symlink in the root is one of its files (the snapshot copies what it
    points to), as `python train.py` with a symlinked train.py runs. Then as resolved: a root
    or a path reached through a symlinked folder (`/tmp` and `/private/tmp`) is the same place.
    """
    try:
        return _as_written(path).relative_to(_as_written(root))
    except ValueError:
        pass
    try:
        return path.resolve().relative_to(root.resolve())
    except ValueError:
        return None


def _as_written(path: Path) -> Path:
    """The absolute path, its `..` taken away by name: symlinks are not followed."""
    return Path(os.path.normpath(path.absolute()))


def select_snapshot(
    root: Path,
    ignored_folders: Sequence[str] = (),
    *,
    max_bytes: int = MAX_SNAPSHOT_BYTES,
    max_files: int = MAX_SNAPSHOT_FILES,
) -> Snapshot:
    """Chooses the files of `root` that travel with a job.

    Raises:
        InvalidInputError: If the root is not a folder.
        SnapshotTooLargeError: If the chosen files exceed `max_bytes` or `max_files`; the
            message names the biggest folders and how to leave them out.
    """
    if not root.is_dir():
        raise InvalidInputError(f"the snapshot root {root} is not a folder")
    spec = pathspec.GitIgnoreSpec.from_lines(ignore_rules(root, ignored_folders))
    chosen: list[SnapshotFile] = []
    environments: list[str] = []
    for directory, folders, names in os.walk(root):
        relative_dir = Path(directory).relative_to(root).as_posix()
        prefix = "" if relative_dir == "." else f"{relative_dir}/"
        folders[:] = [
            name
            for name in folders
            if not spec.match_file(f"{prefix}{name}/") and not _NEVER.match_file(f"{prefix}{name}/")
        ]
        for name in [n for n in folders if (Path(directory) / n / "pyvenv.cfg").exists()]:
            folders.remove(name)
            environments.append(f"{prefix}{name}")
        for name in names:
            relative = f"{prefix}{name}"
            if spec.match_file(relative) or _NEVER.match_file(relative):
                continue
            path = Path(directory) / name
            if path.is_file():
                chosen.append(SnapshotFile(relative, path.stat().st_size))
    chosen.sort(key=lambda f: f.relative)
    snapshot = Snapshot(root, tuple(chosen), tuple(sorted(environments)))
    _check_limits(snapshot, max_bytes, max_files)
    return snapshot


def ignore_rules(root: Path, ignored_folders: Sequence[str] = ()) -> list[str]:
    """Every rule `select_snapshot` applies, as gitignore lines in the order they apply.

    The defaults come first, then the user's `.amlignore` (or `.gitignore`), then
    `ignored_folders`, and the credential rules last, so that no user rule re-includes them.
    Written to `.amlignore`, they make AzureML choose the same files.
    """
    extra = [_folder_pattern(folder) for folder in ignored_folders]
    return [*DEFAULT_IGNORES, *_user_ignores(root), *extra, *CREDENTIAL_IGNORES]


def _user_ignores(root: Path) -> list[str]:
    for name in (IGNORE_FILE, FALLBACK_IGNORE_FILE):
        path = root / name
        if path.is_file():
            return path.read_text(encoding="utf-8").splitlines()
    return []


def _folder_pattern(folder: str) -> str:
    cleaned = Path(folder).as_posix().strip("/")
    if not cleaned or cleaned == ".":
        raise InvalidInputError(f"ignored_folders entry '{folder}' names no folder")
    return f"/{cleaned}/"


def _check_limits(snapshot: Snapshot, max_bytes: int, max_files: int) -> None:
    count, size = len(snapshot.files), snapshot.total_bytes
    if count <= max_files and size <= max_bytes:
        return
    by_folder: dict[str, tuple[int, int]] = {}
    for item in snapshot.files:
        top = item.relative.split("/", 1)[0] if "/" in item.relative else "."
        files, total = by_folder.get(top, (0, 0))
        by_folder[top] = (files + 1, total + item.size)
    biggest = sorted(by_folder.items(), key=lambda kv: (kv[1][1], kv[1][0]), reverse=True)[:5]
    listing = ", ".join(
        f"{'(root files)' if name == '.' else name + '/'} {_size(total)} in {files} files"
        for name, (files, total) in biggest
    )
    raise SnapshotTooLargeError(
        f"the snapshot of {snapshot.root} holds {count} files, {_size(size)}; the limit is "
        f"{max_files} files and {_size(max_bytes)}. Biggest folders: {listing}. "
        f"Leave data out of the snapshot with {IGNORE_FILE} or ignored_folders, and pass it as "
        "a dataset instead."
    )


def _size(count: int) -> str:
    """Bytes as AzureML states its limits: KB and MB of 1024."""
    if count < 1024 * 1024:
        return f"{count / 1024:.1f} KB"
    return f"{count / (1024 * 1024):.1f} MB"
