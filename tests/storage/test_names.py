from __future__ import annotations

from pathlib import Path, PurePosixPath

import pytest

from himl_tasks.errors import InvalidInputError, UnsafeBlobNameError
from himl_tasks.storage.names import local_target, normalize_remote_path


@pytest.mark.parametrize(
    "name",
    [
        "../x",
        "a/../../x",
        "a/..",
        "./x",
        "a/./b",
        "/etc/passwd",
        "a\\b",
        "..\\x",
        "a//b",
        "C:/x",
        "a/",
    ],
)
def test_names_that_escape_or_are_ambiguous_are_refused(name: str, tmp_path: Path) -> None:
    with pytest.raises(UnsafeBlobNameError, match="datastore 'ds'"):
        local_target("ds", tmp_path, name)


@pytest.mark.parametrize("name", ["a", "a/b/c.txt", "..a", "a..b/c", "x.y/z"])
def test_ordinary_names_land_under_the_folder(name: str, tmp_path: Path) -> None:
    target = local_target("ds", tmp_path, name)
    assert target.is_relative_to(tmp_path)
    assert target.relative_to(tmp_path).as_posix() == name


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("", ""),
        (".", ""),
        ("baz", "baz"),
        ("/baz/", "baz"),
        ("a//b/./c", "a/b/c"),
        (PurePosixPath("a/b"), "a/b"),
    ],
)
def test_remote_paths_are_normalised(given: str, expected: str) -> None:
    assert normalize_remote_path(given) == expected


@pytest.mark.parametrize("given", ["..", "a/../b", "a\\b"])
def test_remote_paths_outside_the_datastore_are_refused(given: str) -> None:
    with pytest.raises(InvalidInputError):
        normalize_remote_path(given)
