"""The exceptions himl-tasks raises, one small tree.

Each error is also the builtin exception that a Python programmer would catch for that kind of
failure (shown after the colon), so `except FileNotFoundError` or `except ValueError` works as it
does with the standard library and fsspec: a missing thing is a LookupError (a missing file a
FileNotFoundError), a bad argument a ValueError, a failed read or write an OSError, an expired
wait a TimeoutError.

```
HimlError
├── ConfigurationError            a setting is missing or wrong; the message says which and where
│   ├── DatastoreNotFoundError    : LookupError; no datastore of that name in the workspace
│   ├── ComputeNotFoundError      : LookupError; no compute cluster of that name in the workspace
│   └── WorkspaceNotFoundError    : LookupError; no AzureML workspace given or found; lists where
│                                   it looked
├── InvalidInputError             : ValueError; an argument is unusable (file for a folder, ...)
│   ├── InputPathNotFoundError    : FileNotFoundError; a file or folder given does not exist
│   └── SnapshotTooLargeError     the job's snapshot is over AzureML's size or file-count limit
├── DatasetNotFoundError          : LookupError; no dataset (or no such version) of that name;
│                                   lists what exists
├── RunNotFoundError              : LookupError; no run with that id
├── PipelineNotFoundError         : LookupError; nothing published under that pipeline name (or
│                                   not that version); lists what is published
├── JobFailedError                a job ended other than Completed; carries its final state
├── JobTimeoutError               : TimeoutError; a wait for a run reached its deadline first
├── NotSupportedError             : NotImplementedError; this backend does not offer that
│                                   capability (yet); the message says which backend does
└── StorageError                  a datastore operation failed; carries the datastore's name
    ├── StorageAccessError        : PermissionError; the datastore refused the credential
    ├── ContainerNotFoundError    : FileNotFoundError; the blob container (or folder) does not
    │                               exist
    ├── RemoteFilesNotFoundError  : FileNotFoundError; nothing in the datastore matches a prefix
    ├── UnusableNamesError        : ValueError (an InvalidInputError); names a transfer cannot
    │   │                         write where they would go (too long, a file and a folder at
    │   │                         once, control characters, ...); lists every such name with
    │   │                         why, found before anything is written
    │   └── UnsafeBlobNameError   one of them would land outside the destination folder
    ├── LocalFileError            : OSError, with its errno; a local file or folder could not be
    │   │                         read or written during a transfer; carries the path
    │   ├── LocalFileNotFoundError      : FileNotFoundError (e.g. removed after the plan)
    │   ├── LocalPermissionError        : PermissionError
    │   ├── LocalNotADirectoryError     : NotADirectoryError
    │   └── LocalIsADirectoryError      : IsADirectoryError
    ├── ChecksumMismatchError     : OSError; the bytes received do not match the stored MD5
    ├── TransferFailedError       : OSError; a transient error (timeouts included) persisted
    │                             through every retry, an unexpected answer from the service, or
    │                             a request that could not be made (never retried)
    ├── RemoteFileChangedError    : OSError; a datastore file kept changing while it was
    │                             downloaded
    └── SourceChangedError        : OSError; a local file kept changing while it was uploaded
```

ConfigurationError, JobFailedError and StorageError themselves are no builtin: no builtin means
"a setting is wrong" or "the job failed", and a datastore operation can fail on a bad name
(ValueError) as well as on I/O (OSError).

Errors from libraries below (aiohttp, azure-storage-blob, the OS) are translated at the boundary
where they happen. Messages never contain keys, SAS tokens or passwords.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path


class HimlError(Exception):
    """Base class of every error himl-tasks raises on purpose."""


class ConfigurationError(HimlError):
    """A setting is missing or wrong."""


class DatastoreNotFoundError(ConfigurationError, LookupError):
    """No datastore of the requested name is configured."""


class ComputeNotFoundError(ConfigurationError, LookupError):
    """No compute cluster of the requested name exists."""


class WorkspaceNotFoundError(ConfigurationError, LookupError):
    """No workspace was given and none was found; the message lists every place looked at."""


class InvalidInputError(HimlError, ValueError):
    """An argument cannot be used: the message names it and says what would work."""


class InputPathNotFoundError(InvalidInputError, FileNotFoundError):
    """A file or folder given as an argument does not exist; found before anything was done."""


class SnapshotTooLargeError(InvalidInputError):
    """The snapshot folder is over the size or file-count limit of a job snapshot."""


class DatasetNotFoundError(HimlError, LookupError):
    """No dataset of that name, or not the requested version."""


class RunNotFoundError(HimlError, LookupError):
    """No run with the requested id exists in the workspace."""


class PipelineNotFoundError(HimlError, LookupError):
    """Nothing is published under that pipeline name, or not the requested version."""


class JobFailedError(HimlError):
    """A job ended Failed, Canceled or NotResponding.

    Attributes:
        state: The run's final state (a `himl_tasks.runs.RunState`): status, failure kind,
            error, portal URL.
    """

    def __init__(self, state: object) -> None:
        status = getattr(state, "status", "?")
        kind = getattr(state, "failure_kind", None)
        error = getattr(state, "error", "")
        url = getattr(state, "portal_url", "")
        super().__init__(
            f"run {getattr(state, 'ref', '?')} ended {status}"
            + (f" ({kind})" if kind else "")
            + (f": {error}" if error else "")
            + (f" [{url}]" if url else "")
        )
        self.state = state


class JobTimeoutError(HimlError, TimeoutError):
    """A wait for a run reached its deadline before the run ended.

    The wait does not cancel the run: it goes on, and can be waited for again.
    """


class NotSupportedError(HimlError, NotImplementedError):
    """The backend does not offer this capability (yet): nothing was done.

    The message names the capability, the backend, and where it is offered instead.
    """


class StorageError(HimlError):
    """A datastore operation failed.

    Attributes:
        datastore: Name of the datastore the operation was addressed to.
    """

    def __init__(self, datastore: str, message: str) -> None:
        super().__init__(f"datastore '{datastore}': {message}")
        self.datastore = datastore


class StorageAccessError(StorageError, PermissionError):
    """The datastore refused the credential, or the credential lacks a permission."""


class ContainerNotFoundError(StorageError, FileNotFoundError):
    """The blob container behind a datastore does not exist."""


class RemoteFilesNotFoundError(StorageError, FileNotFoundError):
    """No file in the datastore matches the requested prefix."""


# ---- names a transfer cannot use, and local files it cannot read or write -----------------


class UnusableNamesError(StorageError, InvalidInputError):
    """Names in a transfer cannot be written where they would go; found while planning.

    Attributes:
        problems: Each offending name with why it cannot be used.
    """

    def __init__(
        self, datastore: str, message: str, problems: dict[str, str] | None = None
    ) -> None:
        super().__init__(datastore, message)
        self.problems = dict(problems or {})


class UnsafeBlobNameError(UnusableNamesError):
    """A blob name would be written outside the destination folder."""


class LocalFileError(StorageError, OSError):
    """A local file or folder could not be read or written during a transfer.

    Attributes:
        path: The file or folder concerned.
        errno: The operating system's error number, if there was one (e.g. errno.ENOSPC).
    """

    def __init__(self, datastore: str, path: str, message: str, errno: int | None = None) -> None:
        super().__init__(datastore, message)
        self.path = path
        self.errno = errno
        self._message = message

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.datastore, self.path, self._message, self.errno))


class LocalFileNotFoundError(LocalFileError, FileNotFoundError):
    """A local file or folder a transfer needs is not there (or was removed meanwhile)."""


class LocalPermissionError(LocalFileError, PermissionError):
    """The operating system refused access to a local file or folder."""


class LocalNotADirectoryError(LocalFileError, NotADirectoryError):
    """A local file stands where a transfer needs a folder."""


class LocalIsADirectoryError(LocalFileError, IsADirectoryError):
    """A local folder stands where a transfer needs a file."""


# ---- end of names and local files ---------------------------------------------------------


class ChecksumMismatchError(StorageError, OSError):
    """The MD5 of the bytes received differs from the MD5 the datastore holds.

    Attributes:
        blob_name: The blob whose content did not match.
    """

    def __init__(self, datastore: str, blob_name: str, expected: str, actual: str) -> None:
        super().__init__(
            datastore,
            f"checksum mismatch for '{blob_name}': stored MD5 {expected}, received {actual}; "
            "the file was not written. Download it again; if this repeats, the stored copy "
            "is damaged.",
        )
        self.blob_name = blob_name


class TransferFailedError(StorageError, OSError):
    """A transfer failed after retries, or the service answered in an unexpected way."""


class RemoteFileChangedError(StorageError, OSError):
    """A datastore file was replaced or rewritten each time it was downloaded.

    Nothing was written for it: a download never stitches a file from two versions.

    Attributes:
        name: The file's name in the datastore.
        attempts: How many times it was downloaded from scratch.
    """

    def __init__(self, datastore: str, name: str, attempts: int, detail: str) -> None:
        super().__init__(
            datastore,
            f"'{name}' changed while it was read ({detail}), on each of {attempts} attempts; "
            "nothing was written for it (an earlier local copy, if any, is unchanged). Something "
            "is writing it: download it again once that writer has finished.",
        )
        self.name = name
        self.attempts = attempts


class SourceChangedError(StorageError, OSError):
    """A local file was modified each time it was uploaded.

    Nothing was stored for it: an upload never commits bytes that are not one state of a file.

    Attributes:
        path: The local file.
        name: The name it was being stored under.
        attempts: How many times it was sent from scratch.
    """

    def __init__(self, datastore: str, path: Path, name: str, attempts: int, detail: str) -> None:
        super().__init__(
            datastore,
            f"cannot upload {path} as '{name}': it changed while it was read ({detail}), on "
            f"each of {attempts} attempts; nothing was stored (an earlier copy, if any, is "
            "unchanged). Something is writing it: upload it once that writer has finished, "
            "or upload a copy of it.",
        )
        self.path = path
        self.name = name
        self.attempts = attempts
