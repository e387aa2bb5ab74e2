"""The error tree: each error is also the builtin a Python programmer catches for its kind."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from himl_tasks import errors
from himl_tasks.backends.local.backend import LocalBackend
from himl_tasks.errors import (
    ContainerNotFoundError,
    HimlError,
    InputPathNotFoundError,
    InvalidInputError,
    JobTimeoutError,
    RemoteFilesNotFoundError,
    RunNotFoundError,
)
from himl_tasks.job_spec import JobSpec
from himl_tasks.runs import read_most_recent_run
from himl_tasks.storage import Datastore, LocalDatastore
from himl_tasks.storage.local_errors import translated_local_errors

BUILTIN_OF = {
    # A thing looked up by name that is not there: a LookupError (not KeyError, whose str()
    # would quote the whole message).
    errors.DatastoreNotFoundError: LookupError,
    errors.ComputeNotFoundError: LookupError,
    errors.WorkspaceNotFoundError: LookupError,
    errors.DatasetNotFoundError: LookupError,
    errors.RunNotFoundError: LookupError,
    errors.PipelineNotFoundError: LookupError,
    # A bad argument.
    errors.InvalidInputError: ValueError,
    errors.SnapshotTooLargeError: ValueError,
    errors.UnusableNamesError: ValueError,
    errors.UnsafeBlobNameError: ValueError,
    errors.InputPathNotFoundError: FileNotFoundError,
    # Files and I/O, as fsspec translates them: local and blob datastores raise the same.
    errors.StorageAccessError: PermissionError,
    errors.ContainerNotFoundError: FileNotFoundError,
    errors.RemoteFilesNotFoundError: FileNotFoundError,
    errors.LocalFileError: OSError,
    errors.LocalFileNotFoundError: FileNotFoundError,
    errors.LocalPermissionError: PermissionError,
    errors.LocalNotADirectoryError: NotADirectoryError,
    errors.LocalIsADirectoryError: IsADirectoryError,
    errors.ChecksumMismatchError: OSError,
    errors.TransferFailedError: OSError,
    errors.RemoteFileChangedError: OSError,
    errors.SourceChangedError: OSError,
    # A wait that reached its deadline.
    errors.JobTimeoutError: TimeoutError,
    # A capability a backend does not offer (yet).
    errors.NotSupportedError: NotImplementedError,
}


def test_every_error_is_a_himl_error_and_its_builtin() -> None:
    for error, builtin in BUILTIN_OF.items():
        assert issubclass(error, HimlError), error
        assert issubclass(error, builtin), (error, builtin)


def test_every_error_class_has_its_builtin_decided() -> None:
    # A new error must be placed on purpose: either given a builtin here or listed as none.
    no_builtin = {
        errors.HimlError,
        errors.ConfigurationError,
        errors.JobFailedError,
        errors.StorageError,
    }
    defined = {
        value
        for value in vars(errors).values()
        if isinstance(value, type) and issubclass(value, HimlError)
    }
    assert defined == set(BUILTIN_OF) | no_builtin
    for error in no_builtin:
        # Only what they are, so that `except OSError`/`except ValueError` around a datastore
        # or a job call does not swallow them by accident.
        assert not issubclass(error, (ValueError, OSError, LookupError, RuntimeError)), error


def test_a_bad_name_is_not_an_os_error() -> None:
    # Refused while planning, before any I/O: code that retries or translates OSErrors must
    # not take it for a failed read or write.
    assert not issubclass(errors.UnusableNamesError, OSError)


def test_himl_errors_that_are_os_errors_are_not_translated_again() -> None:
    # The storage engine turns OSErrors escaping an operation into LocalFileErrors; the himl
    # errors that are now OSErrors too must come out as they went in.
    raised = [
        errors.ChecksumMismatchError("ds", "a.txt", "00", "11"),
        errors.TransferFailedError("ds", "failed"),
        errors.RemoteFileChangedError("ds", "a.txt", 3, "replaced"),
        errors.SourceChangedError("ds", Path("a.txt"), "a.txt", 3, "modified"),
        errors.StorageAccessError("ds", "refused"),
        errors.ContainerNotFoundError("ds", "no container"),
        errors.RemoteFilesNotFoundError("ds", "nothing"),
        errors.InputPathNotFoundError("no such folder"),
        errors.JobTimeoutError("still running"),
    ]
    for error in raised:
        with pytest.raises(type(error)) as caught, translated_local_errors("ds"):
            raise error
        assert caught.value is error


def test_a_missing_datastore_folder_stays_container_not_found(tmp_path: Path) -> None:
    store = LocalDatastore(tmp_path / "datastore", name="folderstore", create=True)
    (tmp_path / "datastore").rmdir()
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.txt").write_bytes(b"a")
    with pytest.raises(FileNotFoundError) as caught:
        store.upload_folder(tmp_path / "data", "data")
    assert type(caught.value) is ContainerNotFoundError  # not a LocalFileNotFoundError
    assert "folder" in str(caught.value) and "does not exist" in str(caught.value)


def test_a_missing_folder_to_upload_is_caught_as_file_not_found(
    local_store: LocalDatastore, tmp_path: Path
) -> None:
    missing = tmp_path / "no-such-folder"
    with pytest.raises(FileNotFoundError) as caught:
        local_store.upload_folder(missing, "data")
    assert isinstance(caught.value, InputPathNotFoundError)
    assert isinstance(caught.value, InvalidInputError)  # as before: bad input, nothing done
    assert f"cannot upload {missing}: no such folder" in str(caught.value)
    assert local_store.list("") == []


def test_a_missing_file_to_upload_is_caught_as_file_not_found(
    local_store: LocalDatastore, tmp_path: Path
) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        local_store.upload_files([tmp_path / "missing.txt"])
    (tmp_path / "folder").mkdir()
    with pytest.raises(InvalidInputError, match="is a folder") as caught:
        local_store.upload_files([tmp_path / "folder"])
    assert not isinstance(caught.value, FileNotFoundError)


def test_nothing_under_a_prefix_is_file_not_found_on_every_datastore(
    datastore: Datastore, tmp_path: Path
) -> None:
    with pytest.raises(FileNotFoundError) as caught:
        datastore.download("nothing/here", tmp_path / "out")
    assert isinstance(caught.value, RemoteFilesNotFoundError)
    assert str(caught.value).startswith(f"datastore '{datastore.name}': ")


def test_no_recovery_file_is_a_lookup_error(tmp_path: Path) -> None:
    with pytest.raises(LookupError) as caught:
        read_most_recent_run(tmp_path / "most_recent_run.txt")
    assert isinstance(caught.value, RunNotFoundError)
    assert "no run was submitted from here yet" in str(caught.value)


def test_a_wait_that_times_out_is_caught_as_timeout_error(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "sleep.py").write_text(
        textwrap.dedent("""\
            import time
            time.sleep(60)
        """),
        encoding="utf-8",
    )
    backend = LocalBackend(tmp_path / "workspace")
    ref = backend.submit(JobSpec(entry_script="sleep.py", snapshot_root=project))
    try:
        with pytest.raises(TimeoutError, match="after 0.2 s") as caught:
            backend.wait(ref, timeout=0.2)
        assert isinstance(caught.value, JobTimeoutError)
        assert not backend.get_state(ref).is_terminal  # the wait does not cancel the run
    finally:
        backend.cancel(ref)
        backend.wait(ref, timeout=60)
