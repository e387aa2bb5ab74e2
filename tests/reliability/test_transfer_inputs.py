"""Bad options and failures from below reach the caller as one clear error, never as a hang.

Issue 11, storage items 6 and 7: `concurrency=0` transferred nothing, negative concurrency and
`max_buffered_blocks=0` hung, `remote_path=None` uploaded under `None/`; no request had a deadline
for sending its body; raw OSError, PermissionError, FileNotFoundError, NotADirectoryError,
TypeError, ZeroDivisionError and aiohttp's InvalidUrlClientError escaped; a NUL byte in a name
was retried as if the server were down.
"""

from __future__ import annotations

import errno
import json
import math
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from azure.storage.blob import ContainerClient

from himl_tasks.errors import (
    InvalidInputError,
    LocalFileError,
    LocalFileNotFoundError,
    LocalNotADirectoryError,
    LocalPermissionError,
    StorageError,
    TransferFailedError,
)
from himl_tasks.storage import (
    BlobDatastore,
    Datastore,
    LocalDatastore,
    RequestRetryPolicy,
    RequestTimeouts,
)
from himl_tasks.storage.partials import PARTIAL_SUFFIX
from himl_tasks.testing.azurite import ACCOUNT_NAME, Azurite
from tests.conftest import read_tree, write_tree
from tests.faulty_proxy import FaultyProxy

MIB = 1024 * 1024

# ---- options --------------------------------------------------------------------------------

UNUSABLE_COUNTS = [0, -1, None, 1.5, True, "4"]


@pytest.mark.parametrize("value", UNUSABLE_COUNTS)
def test_a_folder_datastore_refuses_an_unusable_concurrency(tmp_path: Path, value: object) -> None:
    with pytest.raises(InvalidInputError, match="concurrency must be a whole number"):
        LocalDatastore(tmp_path, concurrency=value)  # type: ignore[arg-type]


@pytest.mark.parametrize("option", ["concurrency", "block_size", "max_buffered_blocks"])
@pytest.mark.parametrize("value", UNUSABLE_COUNTS)
def test_a_blob_datastore_refuses_unusable_counts(option: str, value: object) -> None:
    with pytest.raises(InvalidInputError, match=f"{option} must be a whole number"):
        BlobDatastore.from_connection_string(
            "BlobEndpoint=http://127.0.0.1:1/account;SharedAccessSignature=sv=1",
            "any",
            **{option: value},
        )


@pytest.mark.parametrize(
    "options",
    [
        {"attempts": 0},
        {"attempts": -1},
        {"attempts": 2.5},
        {"base_delay": -0.1},
        {"base_delay": math.nan},
        {"max_delay": math.inf},
        {"max_delay": None},
    ],
)
def test_a_retry_policy_refuses_values_that_would_never_try_or_wait_forever(
    options: dict[str, object],
) -> None:
    with pytest.raises(InvalidInputError, match=r"RequestRetryPolicy\.\w+ must be"):
        RequestRetryPolicy(**options)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "options",
    [{"connect": 0}, {"read": -1}, {"read": math.inf}, {"connect": None}, {"min_send_rate": 0}],
)
def test_request_timeouts_refuse_values_that_mean_no_deadline(options: dict[str, object]) -> None:
    with pytest.raises(InvalidInputError, match=r"RequestTimeouts\.\w+ must be"):
        RequestTimeouts(**options)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [0, -2])
def test_a_concurrency_changed_after_construction_is_refused_before_anything_moves(
    datastore: Datastore, tmp_path: Path, value: int
) -> None:
    datastore.concurrency = value
    with pytest.raises(InvalidInputError, match="concurrency must be a whole number"):
        datastore.upload_folder(write_tree(tmp_path / "s", {"a": b"a"}), "d")
    datastore.concurrency = 1
    assert datastore.list() == []


@pytest.mark.parametrize("remote_path", [None, 3, b"bytes", "tab\tname", "nul\0name"])
def test_an_unusable_remote_path_is_refused_and_nothing_is_uploaded(
    datastore: Datastore, tmp_path: Path, remote_path: object
) -> None:
    with pytest.raises(InvalidInputError, match="remote path"):
        datastore.upload_folder(write_tree(tmp_path / "s", {"a": b"a"}), remote_path)  # type: ignore[arg-type]
    assert datastore.list() == []


def test_arguments_of_the_wrong_type_are_refused_not_crashed_on(
    datastore: Datastore, tmp_path: Path
) -> None:
    single = write_tree(tmp_path / "s", {"a.txt": b"a"}) / "a.txt"
    calls: list[Callable[[], object]] = [
        lambda: datastore.upload_folder(None),  # type: ignore[arg-type]
        lambda: datastore.upload_files(single),  # type: ignore[arg-type]
        lambda: datastore.upload_files(str(single)),
        lambda: datastore.upload_files([single], relative_root=1),  # type: ignore[arg-type]
        lambda: datastore.upload_files([single], show_progress=None),  # type: ignore[arg-type]
        lambda: datastore.download("d/", None),  # type: ignore[arg-type]
        lambda: datastore.download(None, tmp_path / "out"),  # type: ignore[arg-type]
        lambda: datastore.list(None),  # type: ignore[arg-type]
        lambda: datastore.delete(None),  # type: ignore[arg-type]
        lambda: datastore.exists(None),  # type: ignore[arg-type]
    ]
    for call in calls:
        with pytest.raises(InvalidInputError):
            call()
    assert datastore.list() == []
    assert not (tmp_path / "out").exists()


def test_constructors_refuse_what_is_not_a_folder_or_connection_string() -> None:
    with pytest.raises(InvalidInputError, match="needs a folder"):
        LocalDatastore(None)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="connection string must be a str"):
        BlobDatastore.from_connection_string(None, "c")  # type: ignore[arg-type]


@pytest.mark.parametrize("endpoint", ["notaurl", "ftp://host/account", "http://"])
def test_an_account_url_that_is_not_a_url_is_refused_when_the_datastore_is_made(
    endpoint: str,
) -> None:
    with pytest.raises(InvalidInputError, match="is not an http.s. URL"):
        BlobDatastore.from_connection_string(
            f"BlobEndpoint={endpoint};SharedAccessSignature=sv=1&sig=secret", "c"
        )


# ---- deadlines: no request waits forever ----------------------------------------------------


class SilentServer:
    """Accepts connections and never reads from or answers them (a hung service)."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.connections: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def __enter__(self) -> SilentServer:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._listener.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in accept()
        self._listener.close()
        self._thread.join(5)
        for connection in self.connections:
            connection.close()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return
            connection.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            self.connections.append(connection)


@pytest.fixture
def silent_store(tmp_path: Path) -> Iterator[tuple[BlobDatastore, SilentServer]]:
    with SilentServer() as server:
        store = BlobDatastore.with_account_key(
            f"http://127.0.0.1:{server.port}/{ACCOUNT_NAME}",
            "c",
            ACCOUNT_NAME,
            "a2V5",
            block_size=64 * MIB,
            retry=RequestRetryPolicy(attempts=3, base_delay=0.01, max_delay=0.02),
            timeouts=RequestTimeouts(connect=0.5, read=0.3, min_send_rate=64 * MIB),
        )
        yield store, server


def test_a_request_whose_answer_never_comes_times_out_and_is_retried(
    silent_store: tuple[BlobDatastore, SilentServer],
) -> None:
    store, server = silent_store
    started = time.monotonic()

    with pytest.raises(TransferFailedError, match="failed 3 times.*Timeout"):
        store.list()

    assert time.monotonic() - started < 10
    assert len(server.connections) == 3  # each attempt timed out, and was retried


def test_a_request_body_the_server_stops_reading_times_out_and_is_retried(
    silent_store: tuple[BlobDatastore, SilentServer], tmp_path: Path
) -> None:
    store, server = silent_store
    # Far more than the loopback socket buffers hold, sent in one request.
    source = write_tree(tmp_path / "s", {"big.bin": os.urandom(48 * MIB)})
    started = time.monotonic()

    with pytest.raises(TransferFailedError, match="failed 3 times"):
        store.upload_folder(source, "d")

    assert time.monotonic() - started < 20
    assert len(server.connections) == 3


# ---- client-side mistakes are never retried -------------------------------------------------


@pytest.fixture
def proxy(azurite: Azurite) -> Iterator[FaultyProxy]:
    with FaultyProxy(azurite.host, azurite.port) as running:
        yield running


def test_a_nul_or_control_character_in_a_name_is_refused_without_a_request(
    proxy: FaultyProxy, container: ContainerClient, azurite: Azurite, tmp_path: Path
) -> None:
    store = BlobDatastore.with_account_key(
        f"http://127.0.0.1:{proxy.port}/{ACCOUNT_NAME}",
        container.container_name,
        ACCOUNT_NAME,
        azurite.account_key,
        retry=RequestRetryPolicy(attempts=6, base_delay=1, max_delay=1),
    )
    calls: list[Callable[[], object]] = [
        lambda: store.exists("a\0b"),
        lambda: store.list("a\0"),
        lambda: store.delete("a\0"),
        lambda: store.download("a\0", tmp_path / "out"),
        lambda: store.list("line\nbreak"),
    ]
    for call in calls:
        with pytest.raises(InvalidInputError, match="NUL character|control character"):
            call()
    assert proxy.requests == 0


# ---- errors of the local file system --------------------------------------------------------


class RemoveOneFileWhenTheFirstIsSent:
    """A progress reporter that removes a file the plan holds once the first file is sent."""

    def __init__(self, victim: Path) -> None:
        self.victim = victim

    def start(self, files: int, total_bytes: int) -> None:
        pass

    def advance(self, nbytes: int) -> None:
        pass

    def file_done(self) -> None:
        self.victim.unlink(missing_ok=True)


def test_a_source_file_removed_after_the_plan_fails_naming_it(
    datastore: Datastore, tmp_path: Path
) -> None:
    source = write_tree(tmp_path / "s", {f"{i:03d}.txt": b"x" * i for i in range(1, 11)})
    victim = source / "007.txt"
    datastore.concurrency = 1  # files go in name order, one at a time

    with pytest.raises(LocalFileNotFoundError) as raised:
        datastore.upload_folder(source, "d", show_progress=RemoveOneFileWhenTheFirstIsSent(victim))

    error = raised.value
    assert isinstance(error, FileNotFoundError) and isinstance(error, StorageError)
    assert error.errno == errno.ENOENT and error.path == str(victim)
    assert str(victim) in str(error) and "removed or renamed" in str(error)
    assert "after 6 of 10 files were sent" in str(error)
    assert len(datastore.list("d/")) == 6


def test_a_download_under_a_file_fails_as_not_a_directory(
    datastore: Datastore, tmp_path: Path
) -> None:
    datastore.upload_folder(write_tree(tmp_path / "s", {"a": b"a"}), "d")
    in_the_way = write_tree(tmp_path, {"file": b"not a folder"}) / "file"

    with pytest.raises(LocalNotADirectoryError) as raised:
        datastore.download("d/", in_the_way / "sub")

    assert isinstance(raised.value, NotADirectoryError)
    assert str(in_the_way) in str(raised.value)
    assert in_the_way.read_bytes() == b"not a folder"


def test_paths_the_system_refuses_fail_as_local_file_errors(
    datastore: Datastore, tmp_path: Path
) -> None:
    datastore.upload_folder(write_tree(tmp_path / "s", {"a": b"a"}), "d")
    loop = tmp_path / "loop"
    loop.symlink_to(loop)

    with pytest.raises(LocalFileError) as looped:
        datastore.download("d/", loop / "out")
    with pytest.raises(LocalFileError) as too_long:
        datastore.download("d/", tmp_path / ("x" * 300))

    assert looped.value.errno == errno.ELOOP and isinstance(looped.value, OSError)
    assert "symbolic links loop" in str(looped.value)
    assert too_long.value.errno == errno.ENAMETOOLONG
    assert "too long for the file system" in str(too_long.value)


def test_a_folder_that_links_to_itself_is_refused_before_anything_is_sent(
    datastore: Datastore, tmp_path: Path
) -> None:
    source = write_tree(tmp_path / "s", {"a.txt": b"a", "sub/b.txt": b"b"})
    (source / "sub" / "back").symlink_to(source)

    with pytest.raises(InvalidInputError, match="links to a folder that contains it"):
        datastore.upload_folder(source, "d")
    assert datastore.list() == []


@contextmanager
def unwritable(folder: Path) -> Iterator[None]:
    """Makes a folder refuse new files, for root too (root ignores permission bits)."""
    if os.geteuid() != 0:
        folder.chmod(0o500)
        try:
            yield
        finally:
            folder.chmod(0o700)
        return
    chattr = shutil.which("chattr")
    if chattr is None or subprocess.run([chattr, "+i", str(folder)]).returncode != 0:
        pytest.skip("running as root without a working chattr: cannot make a folder unwritable")
    try:
        yield
    finally:
        subprocess.run([chattr, "-i", str(folder)], check=True)


def test_a_folder_without_permission_fails_as_a_permission_error(
    datastore: Datastore, tmp_path: Path
) -> None:
    datastore.upload_folder(write_tree(tmp_path / "s", {"a": b"a"}), "d")
    output = tmp_path / "out"
    output.mkdir()

    with unwritable(output), pytest.raises(LocalPermissionError) as raised:
        datastore.download("d/", output)

    assert isinstance(raised.value, PermissionError)
    assert str(output) in str(raised.value) and "check the permissions" in str(raised.value)
    assert list(output.iterdir()) == []


# A download whose process may write no file bigger than 1 MB (as a full disk would stop it).
LIMITED_DOWNLOAD = """
import json, resource, signal, sys
from himl_tasks.errors import LocalFileError
from himl_tasks.storage import LocalDatastore

signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (1_000_000, resource.RLIM_INFINITY))
try:
    LocalDatastore(sys.argv[1]).download("d/", sys.argv[2])
except LocalFileError as error:
    print(json.dumps({"class": type(error).__name__, "errno": error.errno, "message": str(error),
                      "is_oserror": isinstance(error, OSError)}))
"""


def test_a_write_the_system_refuses_midway_fails_naming_the_file_and_leaves_nothing(
    local_store: LocalDatastore, tmp_path: Path
) -> None:
    local_store.upload_folder(write_tree(tmp_path / "s", {"big.bin": os.urandom(3 * MIB)}), "d")
    output = tmp_path / "out"

    finished = subprocess.run(
        [sys.executable, "-c", LIMITED_DOWNLOAD, str(local_store.folder), str(output)],
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert finished.returncode == 0, finished.stderr
    outcome = json.loads(finished.stdout)
    assert outcome["class"] == "LocalFileError" and outcome["is_oserror"]
    assert outcome["errno"] == errno.EFBIG
    assert str(output / "d" / "big.bin") in outcome["message"]
    assert read_tree(output) == {}  # no torn file, no temporary file
    assert not any(p.name.endswith(PARTIAL_SUFFIX) for p in output.rglob("*"))
