"""Datasets as jobs name them: hi-ml's `DatasetConfig`, and what a name resolves to."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from himl_tasks.errors import InvalidInputError
from himl_tasks.number_checks import is_whole_number

if TYPE_CHECKING:
    from himl_tasks.storage import Datastore

_DATASET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,254}$")


@dataclass(frozen=True)
class DatasetConfig:
    """A dataset a job reads or writes, with hi-ml's meaning for every field.

    Args:
        name: The dataset's name; for a dataset that does not exist yet, also the folder in the
            datastore that it is created from.
        datastore: The datastore's name ("" for the workspace's default).
        version: A registered version; None means the latest.
        use_mounting: For inputs: mount instead of download (default: download). For outputs:
            write in place instead of uploading at the end (default: mount).
        target_folder: An absolute folder where the job finds the data, instead of a temporary one.
        local_folder: The folder used when the script runs outside any job (plain `python`).

    A version may be given as text ("3", as command lines and Prefect parameters carry it;
    "latest" is None), as AzureML accepts it; it is kept as a number. An empty `target_folder`
    or `local_folder` means none, as in hi-ml.

    Raises:
        InvalidInputError: For an empty or unusable name, a version that is not a whole number
            of 1 or more, a relative target_folder, or a field of the wrong type.
    """

    name: str
    datastore: str = ""
    version: int | None = None
    use_mounting: bool | None = None
    target_folder: Path | None = None
    local_folder: Path | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _DATASET_NAME.match(self.name):
            raise InvalidInputError(
                f"{self.name!r} is not a usable dataset name: use letters, digits, '_', '-' and "
                "'.', starting with a letter or digit"
            )
        if not isinstance(self.datastore, str):
            raise InvalidInputError(
                f"dataset '{self.name}': datastore must be a datastore's name, not "
                f"{self.datastore!r}"
            )
        object.__setattr__(self, "version", _version(self.name, self.version))
        if self.use_mounting is not None and not isinstance(self.use_mounting, bool):
            raise InvalidInputError(
                f"dataset '{self.name}': use_mounting must be True, False or None, not "
                f"{self.use_mounting!r}"
            )
        for folder in ("target_folder", "local_folder"):
            if getattr(self, folder) == "":
                object.__setattr__(self, folder, None)
        if self.target_folder is not None:
            target = Path(self.target_folder)
            if not target.is_absolute():
                raise InvalidInputError(
                    f"dataset '{self.name}': target_folder must be an absolute path, not '{target}'"
                )
            object.__setattr__(self, "target_folder", target)
        if self.local_folder is not None:
            object.__setattr__(self, "local_folder", Path(self.local_folder))


def _version(name: str, version: object) -> int | None:
    """A dataset version as a number (None for the latest); refuses anything else."""
    if version is None:
        return None
    if isinstance(version, str) and version.strip().lower() == "latest":
        return None
    number: int | None = None
    if is_whole_number(version):
        number = version
    elif isinstance(version, str) and version.strip().isdecimal():
        number = int(version.strip())
    if number is None or number < 1:
        raise InvalidInputError(
            f"dataset '{name}': version must be a whole number of 1 or more (or None or "
            f"'latest' for the latest), not {version!r}"
        )
    return number


def as_dataset_config(item: DatasetConfig | str, default_datastore: str = "") -> DatasetConfig:
    """Accepts a dataset name where a `DatasetConfig` is expected, as hi-ml does.

    A name is a dataset in `default_datastore`; a `DatasetConfig` keeps its own datastore, also
    when it is "" (the workspace's default), as in hi-ml's `submit_to_azure_if_needed`.
    """
    return item if isinstance(item, DatasetConfig) else DatasetConfig(item, default_datastore)


def as_dataset_configs(
    given: Sequence[DatasetConfig | str], *, parameter: str, default_datastore: str = ""
) -> tuple[DatasetConfig, ...]:
    """A list of dataset names and `DatasetConfig`s as `DatasetConfig`s (`as_dataset_config`).

    Args:
        given: The list.
        parameter: The argument's name, for the error.
        default_datastore: The datastore of each dataset given by name.

    Raises:
        InvalidInputError: For one name instead of a list ("mnist" would be five datasets,
            "m", "n", ...), or an item that is neither a name nor a `DatasetConfig`.
    """
    if isinstance(given, str | bytes) or not isinstance(given, Sequence):
        raise InvalidInputError(
            f"{parameter} must be a list of dataset names or DatasetConfigs, e.g. ['mnist'], "
            f"not {given!r}"
        )
    for item in given:
        if not isinstance(item, str | DatasetConfig):
            raise InvalidInputError(
                f"{parameter} holds {item!r}: give dataset names or DatasetConfigs"
            )
    return tuple(as_dataset_config(item, default_datastore) for item in given)


@dataclass(frozen=True)
class ResolvedDataset:
    """A registered dataset version and where its files are.

    Attributes:
        name: The dataset's name.
        version: Its version, from 1.
        datastore: The datastore holding its files.
        path: The folder in that datastore ('/'-separated).
        created_by_run: What made the version: the run that registered it
            (`register_dataset(created_by_run=...)`), None when it was registered outside a
            run (by hand, or found as a datastore folder).
    """

    name: str
    version: int
    datastore: str
    path: str
    created_by_run: str | None = None

    @property
    def uri(self) -> str:
        """`name:version`, as AzureML writes a dataset version."""
        return f"{self.name}:{self.version}"


def folder_to_register(name: str, store: Datastore, path: str) -> str:
    """Checks a dataset version about to be registered; returns its folder ('/'-separated).

    Raises:
        InvalidInputError: If the name is unusable or the datastore holds no files under `path`.
    """
    from himl_tasks.storage.names import normalize_prefix

    DatasetConfig(name)  # checks the name
    folder = normalize_prefix(path).rstrip("/")
    if not folder or not store.list(f"{folder}/"):
        raise InvalidInputError(
            f"cannot register dataset '{name}': datastore '{store.name}' has no files under "
            f"'{path}'"
        )
    return folder
