"""Blob names: building them from local paths and mapping them safely back to local paths.

Blob names are '/'-separated and relative. A name that would land outside a destination folder
(a '..' or '.' segment, an absolute path, a backslash, a drive letter) is refused.

Every name a transfer would write is checked while it is planned, before anything is written:
the checks here say why a name cannot be used, and the engine reports all of them at once.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Sequence
from pathlib import Path, PurePath

from himl_tasks.errors import InvalidInputError, UnsafeBlobNameError
from himl_tasks.storage.partials import PARTIAL_NAME_BYTES, PARTIAL_SUFFIX

MAX_BLOB_NAME_CHARS = 1024
"""Azure Blob Storage's limit on the length of a blob name."""

MAX_BLOB_NAME_SEGMENTS = 254
"""Azure Blob Storage's limit on the number of '/'-separated segments of a blob name."""

_UNUSABLE_CHARACTERS = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")
"""Control characters (C0, DEL, C1), lone surrogates (undecodable bytes of a file name), and
U+FFFE and U+FFFF, which XML cannot carry: a blob so named breaks every later listing of its
container (Azurite answers HTTP 500)."""

DEFAULT_NAME_MAX = 255
DEFAULT_PATH_MAX = 4096


def normalize_remote_path(remote_path: str | PurePath) -> str:
    """Turns a user's remote folder into a clean blob name prefix without slashes at its ends.

    Args:
        remote_path: A folder in the datastore, e.g. "baz", Path("a/b") or "" for the root.

    Returns:
        The folder as a '/'-separated name, "" for the datastore root.

    Raises:
        InvalidInputError: If the path has '..' segments or backslashes.
    """
    text = _text("remote path", remote_path)
    if "\\" in text:
        raise InvalidInputError(
            f"remote path {text!r} contains a backslash; datastore paths are '/'-separated"
        )
    segments = [s for s in text.split("/") if s not in ("", ".")]
    if ".." in segments:
        raise InvalidInputError(
            f"remote path {text!r} contains '..'; give a path inside the datastore"
        )
    return "/".join(segments)


def normalize_prefix(prefix: str | PurePath) -> str:
    """Turns a user's download or listing prefix into a plain string prefix of blob names.

    Unlike a remote folder, a prefix may end in '/' (or not) and match part of a name.
    """
    text = _text("prefix", prefix)
    return "" if text == "." else text.lstrip("/")


def check_name_argument(what: str, name: object) -> str:
    """Returns a user-given file name as a str, refusing other types and unusable characters.

    Raises:
        InvalidInputError: If `name` is not a str or path, is empty, or holds a control character.
    """
    text = _text(what, name)
    if not text:
        raise InvalidInputError(f"the {what} is empty; give the name of a file in the datastore")
    return text


def _text(what: str, value: object) -> str:
    if isinstance(value, PurePath):
        text = value.as_posix()
    elif isinstance(value, str):
        text = value
    else:
        raise InvalidInputError(
            f"the {what} must be a str or a path, not {type(value).__name__} ({value!r})"
        )
    if (problem := _character_problem(text)) is not None:
        raise InvalidInputError(f"the {what} {text!r} {problem}")
    return text


def join_blob_name(folder: str, relative: str) -> str:
    """Joins a normalized remote folder and a '/'-separated relative name."""
    return f"{folder}/{relative}" if folder else relative


def local_target(datastore: str, output_folder: Path, blob_name: str) -> Path:
    """Returns where a blob lands under a folder, refusing names that would escape it.

    Args:
        datastore: Datastore name, for the error message.
        output_folder: The destination folder.
        blob_name: The blob's full name.

    Returns:
        `output_folder` joined with the blob name's segments.

    Raises:
        UnsafeBlobNameError: If the name is absolute, has '.' or '..' segments, empty segments,
            backslashes or a drive letter.
    """
    if is_unsafe(blob_name):
        raise UnsafeBlobNameError(
            datastore,
            f"blob name {blob_name!r} would be written outside the folder {output_folder}; "
            "it was refused and nothing was downloaded. Rename the blob in the datastore.",
            {blob_name: f"would be written outside the folder {output_folder}"},
        )
    return output_folder.joinpath(*blob_name.split("/"))


def is_unsafe(blob_name: str) -> bool:
    """Tells whether a name could escape a folder or is ambiguous as a local path."""
    segments = blob_name.split("/")
    return (
        "\\" in blob_name
        or "\0" in blob_name
        or blob_name.startswith("/")
        or any(s in ("", ".", "..") for s in segments)
        or (len(segments[0]) >= 2 and segments[0][1] == ":")
    )


def blob_name_problem(name: str) -> str | None:
    """Says why `name` cannot be stored as a blob name (and read back), or None if it can.

    Azure allows 1,024 characters and 254 segments; control characters break listings (Azurite
    answers them with HTTP 500), and a name that is not valid Unicode (a local file name made of
    undecodable bytes) cannot be sent at all.
    """
    if (problem := _character_problem(name)) is not None:
        return problem
    if len(name) > MAX_BLOB_NAME_CHARS:
        return f"is {len(name)} characters long; blob names allow {MAX_BLOB_NAME_CHARS}"
    if name.count("/") + 1 > MAX_BLOB_NAME_SEGMENTS:
        return f"has {name.count('/') + 1} segments; blob names allow {MAX_BLOB_NAME_SEGMENTS}"
    if "\\" in name:
        return "contains a backslash, which datastores do not allow in names"
    if is_unsafe(name):
        return "has an empty, '.' or '..' segment"
    return _reserved_problem(name)


def _reserved_problem(name: str) -> str | None:
    # Such a file would be hidden from a folder's listing and, once downloaded, removed by the
    # next transfer into its folder as the leftover of a dead one.
    if name.endswith(PARTIAL_SUFFIX):
        return (
            f"ends in '{PARTIAL_SUFFIX}', which marks files still being written (hidden, and "
            "removed as leftovers)"
        )
    return None


def _character_problem(text: str) -> str | None:
    found = _UNUSABLE_CHARACTERS.search(text)
    if found is None:
        return None
    character = found.group()
    if character == "\0":
        return "contains a NUL character"
    if "\ud800" <= character <= "\udfff":
        return "is not valid UTF-8 (a name made of undecodable bytes)"
    if character in "\ufffe\uffff":
        return f"contains the noncharacter U+{ord(character):04X}, which listings cannot carry"
    return f"contains the control character U+{ord(character):04X}"


def local_write_problems(
    root: Path, names: Sequence[str], *, sizes: dict[str, int] | None = None
) -> dict[str, str]:
    """Says, for each name that cannot be written under `root` as a file, why.

    Looks at the names together (a name cannot be a file and a folder at once) and at what is
    already on disk (a file where a folder is needed, a folder where a file is needed), and at
    the file system's limits on the length of a name and of a path.

    Args:
        root: The folder the names are written under (it need not exist yet).
        names: '/'-separated names, relative to `root`.
        sizes: Sizes of the named files, if known: a non-empty name ending in '/' is a file with
            no name to write it under (an empty one is a folder marker, and not a problem).

    Returns:
        {name: why} for every name that cannot be written; empty if all can.
    """
    name_max, path_max = _limits(root)
    root_bytes = len(os.fsencode(str(root)))
    all_names = set(names)
    problems: dict[str, str] = {}
    kinds: dict[Path, int | None] = {}
    for name in names:
        if name.endswith("/"):
            size = (sizes or {}).get(name, 0)
            if size:
                problems[name] = (
                    f"ends in '/' but holds {size} bytes: it has no file name to be written under"
                )
            continue
        if is_unsafe(name):
            problems[name] = f"would be written outside the folder {root}"
            continue
        if (reserved := _reserved_problem(name)) is not None:
            problems[name] = reserved
            continue
        segments = name.split("/")
        too_long = [s for s in segments if len(os.fsencode(s)) > name_max]
        if too_long:
            problems[name] = (
                f"has a segment of {len(os.fsencode(too_long[0]))} bytes; the file system at "
                f"{root} allows {name_max}"
            )
            continue
        # The file is first written under its temporary name, which may be the longer one.
        final_bytes = len(os.fsencode(name))
        temporary_bytes = final_bytes - len(os.fsencode(segments[-1])) + PARTIAL_NAME_BYTES
        if root_bytes + 1 + max(final_bytes, temporary_bytes) >= path_max:
            problems[name] = f"would make a local path longer than the {path_max} bytes allowed"
            continue
        folders = ["/".join(segments[:i]) for i in range(1, len(segments))]
        both = next((f for f in folders if f in all_names), None)
        if both is not None:
            problems[name] = f"needs '{both}' as a folder, but '{both}' is also a file to write"
            continue
        if (problem := _on_disk_problem(root, segments, kinds)) is not None:
            problems[name] = problem
    return problems


def _on_disk_problem(root: Path, segments: list[str], kinds: dict[Path, int | None]) -> str | None:
    path = root
    for index, segment in enumerate(segments):
        path = path / segment
        if path not in kinds:
            try:
                kinds[path] = stat.S_IFMT(path.stat().st_mode)
            except (FileNotFoundError, NotADirectoryError):
                kinds[path] = None
        kind = kinds[path]
        if kind is None:
            return None  # nothing below a missing folder can be in the way
        last = index == len(segments) - 1
        if not last and kind != stat.S_IFDIR:
            return f"needs a folder where the file {path} is"
        if last and kind == stat.S_IFDIR:
            return f"needs a file where the folder {path} is"
    return None


def _limits(root: Path) -> tuple[int, int]:
    """The name and path length limits of the file system `root` is (or will be) on."""
    existing = root
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    try:
        return (
            int(os.pathconf(existing, "PC_NAME_MAX")),
            int(os.pathconf(existing, "PC_PATH_MAX")),
        )
    except (OSError, ValueError):
        return DEFAULT_NAME_MAX, DEFAULT_PATH_MAX
