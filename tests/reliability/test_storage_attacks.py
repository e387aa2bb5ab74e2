"""Attacks on the merged storage engine of issue 11, and the classes of failure they found.

A hostile tester's tries after both halves of issue 11's storage items were merged: names that
look like the engine's own temporary files, things in a folder that are not files (fifos, broken
links), prefixes that climb out of a folder datastore, options of the wrong type taken at their
truthiness, constructors that accepted what failed later as raw Python errors. Each test here
failed on the merged code.
"""

from __future__ import annotations

import asyncio
import math
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from azure.storage.blob import ContainerClient

from himl_tasks.errors import (
    InvalidInputError,
    LocalFileError,
    StorageAccessError,
    StorageError,
    TransferFailedError,
    UnusableNamesError,
)
from himl_tasks.storage import (
    BlobDatastore,
    Datastore,
    LocalDatastore,
    RequestRetryPolicy,
    RequestTimeouts,
)
from himl_tasks.storage import blob as blob_module
from himl_tasks.storage.partials import PARTIAL_SUFFIX
from himl_tasks.testing.azurite import Azurite
from tests.conftest import TEST_BLOCK_SIZE, read_tree, write_tree
from tests.faulty_proxy import FaultyProxy
from tests.reliability.test_consistent_transfers import Hooked

# ---- names that look like the engine's temporary files ----------------------------------------


@pytest.mark.parametrize("name", [f".a{PARTIAL_SUFFIX}", f"data{PARTIAL_SUFFIX}"])
def test_a_file_named_like_a_temporary_file_is_refused_before_anything_is_uploaded(
    datastore: Datastore, tmp_path: Path, name: str
) -> None:
    # Stored, it was hidden from the folder datastore's listing (and sent again each time), and
    # once downloaded it was removed by the next download into its folder as a leftover.
    source = write_tree(tmp_path / "s", {"ok.txt": b"ok", f"sub/{name}": b"precious"})
    with pytest.raises(UnusableNamesError, match=PARTIAL_SUFFIX):
        datastore.upload_folder(source, "d")
    assert datastore.list() == []


def test_a_blob_named_like_a_temporary_file_is_not_downloaded_to_be_swept_later(
    blob_store: BlobDatastore, container: ContainerClient, tmp_path: Path
) -> None:
    container.upload_blob(f"d/.x{PARTIAL_SUFFIX}", b"precious")
    container.upload_blob("d/ok.txt", b"ok")
    with pytest.raises(UnusableNamesError, match=rf"\.x{PARTIAL_SUFFIX}"):
        blob_store.download("d/", tmp_path / "out")
    assert not (tmp_path / "out").exists() or read_tree(tmp_path / "out") == {}


# ---- things in a folder that are not files ------------------------------------------------------


def _within(seconds: float, call: Callable[[], object], unblock: Callable[[], None]) -> object:
    """Runs `call` in a thread; if it has not returned after `seconds`, unblocks it and fails."""
    outcome: list[object] = []

    def run() -> None:
        try:
            outcome.append(call())
        except BaseException as error:  # handed to the test thread
            outcome.append(error)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        unblock()
        thread.join(5)
        pytest.fail(f"the call hung for {seconds} s")
    if isinstance(outcome[0], BaseException):
        raise outcome[0]
    return outcome[0]


def _open_fifo_for_writing(fifo: Path) -> Callable[[], None]:
    def unblock() -> None:
        # A reader waiting in open() gets end-of-file once a writer comes and goes.
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))

    return unblock


def test_a_fifo_or_broken_link_in_a_folder_datastore_neither_hangs_nor_breaks_its_listing(
    local_store: LocalDatastore, tmp_path: Path
) -> None:
    write_tree(local_store.folder, {"d/a.txt": b"a"})
    fifo = local_store.folder / "d" / "fifo"
    os.mkfifo(fifo)
    (local_store.folder / "d" / "gone").symlink_to(tmp_path / "nowhere")
    # Hashing the fifo for the listing waited for a writer forever; the broken link failed every
    # listing with "it was removed or renamed while the transfer ran".
    listed = _within(10, local_store.list, _open_fifo_for_writing(fifo))
    assert [f.name for f in listed] == ["d/a.txt"]  # type: ignore[attr-defined]
    report = local_store.download("d/", tmp_path / "out")
    assert report.files == 1
    assert read_tree(tmp_path / "out") == {"d/a.txt": b"a"}


def test_an_upload_refuses_a_folder_holding_a_fifo_or_a_broken_link_before_sending(
    datastore: Datastore, tmp_path: Path
) -> None:
    # They were skipped without a word: the upload reported success without them.
    source = write_tree(tmp_path / "s", {"a.txt": b"a"})
    os.mkfifo(source / "fifo")
    (source / "gone").symlink_to(tmp_path / "nowhere")
    with pytest.raises(InvalidInputError) as refused:
        datastore.upload_folder(source, "d")
    assert "fifo" in str(refused.value)
    assert "broken symbolic link" in str(refused.value)
    assert datastore.list() == []


def test_upload_files_says_a_fifo_is_not_a_regular_file(
    datastore: Datastore, tmp_path: Path
) -> None:
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(InvalidInputError, match="not a regular file"):  # was "does not exist"
        datastore.upload_files([tmp_path / "fifo"])


# ---- prefixes and names that climb out of a folder datastore --------------------------------


@pytest.mark.parametrize("prefix", ["../", "../outside/", "d/../../"])
def test_a_prefix_climbing_out_of_a_folder_datastore_lists_nothing_outside(
    tmp_path: Path, prefix: str
) -> None:
    store = LocalDatastore(tmp_path / "store" / "inside", create=True)
    write_tree(tmp_path / "store" / "outside", {"secret.txt": b"not the datastore's"})
    write_tree(store.folder, {"d/a.txt": b"a"})
    assert store.list(prefix) == []
    with pytest.raises(Exception, match="no file name starts with"):
        store.download(prefix, tmp_path / "out")


def test_exists_refuses_an_empty_name_and_answers_false_for_names_never_stored(
    datastore: Datastore,
) -> None:
    # The folder datastore raised UnsafeBlobNameError ("nothing was downloaded") for both; the
    # blob datastore sent `HEAD <container>/` and failed with HTTP 400.
    with pytest.raises(InvalidInputError, match="empty"):
        datastore.exists("")
    assert datastore.exists("../x") is False


# ---- options of the wrong type ------------------------------------------------------------------


@pytest.mark.parametrize("value", ["False", None, 0, 1.0, math.nan])
def test_an_option_that_must_be_true_or_false_refuses_anything_else_before_anything_moves(
    datastore: Datastore, tmp_path: Path, value: object
) -> None:
    # overwrite="False" overwrote: a truthy stand-in was taken at its word.
    source = write_tree(tmp_path / "s", {"a.txt": b"new"})
    datastore.upload_files([write_tree(tmp_path / "old", {"a.txt": b"old"}) / "a.txt"], "d")
    calls: list[Callable[[], object]] = [
        lambda: datastore.upload_folder(source, "d", overwrite=value),  # type: ignore[arg-type]
        lambda: datastore.upload_files([source / "a.txt"], "d", overwrite=value),  # type: ignore[arg-type]
        lambda: datastore.upload_folder(source, "d", skip_identical=value),  # type: ignore[arg-type]
        lambda: datastore.download("d/", tmp_path / "out", overwrite=value),  # type: ignore[arg-type]
        lambda: datastore.download("d/", tmp_path / "out", validate_checksum=value),  # type: ignore[arg-type]
        lambda: datastore.download("nothing", tmp_path / "out", missing_ok=value),  # type: ignore[arg-type]
    ]
    for call in calls:
        with pytest.raises(InvalidInputError, match="must be True or False"):
            call()
    out = tmp_path / "out"
    assert not out.exists()
    datastore.download("d/", out)
    assert read_tree(out) == {"d/a.txt": b"old"}


def test_local_paths_that_are_empty_or_hold_a_nul_are_refused(
    datastore: Datastore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    work = write_tree(tmp_path / "cwd", {"stray.txt": b"the current folder's"})
    monkeypatch.chdir(work)
    # "" meant the current folder: an unset variable uploaded it (or downloaded into it); a NUL
    # escaped as a raw ValueError.
    calls: list[Callable[[], object]] = [
        lambda: datastore.upload_folder(""),
        lambda: datastore.upload_folder("a\0b"),
        lambda: datastore.download("", ""),
        lambda: datastore.download("", "out\0put"),
        lambda: datastore.upload_files(["stray.txt"], relative_root=""),
    ]
    for call in calls:
        with pytest.raises(InvalidInputError, match="empty|NUL"):
            call()
    assert datastore.list() == []


# ---- constructors -------------------------------------------------------------------------------


@pytest.mark.parametrize("folder", ["", "a\0b", b"bytes"])
def test_a_folder_datastore_refuses_an_unusable_folder(
    folder: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InvalidInputError):
        LocalDatastore(folder, create=True)  # type: ignore[arg-type]


def test_a_folder_datastore_that_cannot_be_created_says_why(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"")
    too_long = "x" * 300
    for folder in (tmp_path / "file" / "store", tmp_path / too_long):
        with pytest.raises(LocalFileError, match=str(tmp_path)):  # was the raw OSError
            LocalDatastore(folder, create=True)
    with pytest.raises(InvalidInputError, match="create must be True or False"):
        LocalDatastore(tmp_path / "s", create="yes")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "container", ["a/b", "c/../x", "Upper", "a b", "", "a" * 64, "-ab", "a--b", "a?b", "\n", None]
)
def test_a_blob_datastore_refuses_a_container_name_azure_does_not_allow(
    azurite: Azurite, container: object
) -> None:
    # "a/b" addressed container "a" with a blob prefix; others failed at the first request.
    with pytest.raises(InvalidInputError, match="container name"):
        BlobDatastore.from_connection_string(azurite.connection_string, container)  # type: ignore[arg-type]


def test_a_blob_datastore_refuses_credentials_and_options_of_the_wrong_type(
    azurite: Azurite,
) -> None:
    url, key = azurite.account_url, azurite.account_key
    calls: list[Callable[[], object]] = [
        lambda: BlobDatastore.with_account_key(url, "ok-name", "devstoreaccount1", None),  # type: ignore[arg-type]
        lambda: BlobDatastore.with_account_key(url, "ok-name", None, key),  # type: ignore[arg-type]
        lambda: BlobDatastore.with_account_key(url, "ok-name", "", key),
        lambda: BlobDatastore.with_sas_token(url, "ok-name", None),  # type: ignore[arg-type]
        lambda: BlobDatastore.with_sas_token(url, "ok-name", 5),  # type: ignore[arg-type]
        lambda: BlobDatastore.with_sas_token(url, "ok-name", "sv=1&sig=SECRET\nSIG"),
        lambda: BlobDatastore(url, "ok-name", auth=None),  # type: ignore[arg-type]
        lambda: BlobDatastore.from_connection_string(
            azurite.connection_string, "ok-name", timeouts="x"
        ),
        lambda: BlobDatastore.from_connection_string(azurite.connection_string, "ok-name", retry=5),
        lambda: BlobDatastore.from_connection_string(
            azurite.connection_string, "ok-name", ssl_context="x"
        ),
        lambda: BlobDatastore.from_connection_string(azurite.connection_string, "ok-name", name=5),
    ]
    for call in calls:
        with pytest.raises(InvalidInputError) as refused:
            call()
        assert key not in str(refused.value) and "SECRET" not in str(refused.value)


@pytest.mark.parametrize(
    "make",
    [
        lambda: RequestRetryPolicy(base_delay=1e300, max_delay=1e300),
        lambda: RequestRetryPolicy(max_delay=10**9),
        lambda: RequestTimeouts(connect=1e300),
        lambda: RequestTimeouts(read=10**9),
    ],
)
def test_waits_so_long_they_look_like_a_hang_are_refused(make: Callable[[], object]) -> None:
    with pytest.raises(InvalidInputError, match="at most"):
        make()


# ---- a server that answers, but a byte at a time ------------------------------------------------


class TrickleProxy(FaultyProxy):
    """A loopback proxy to Azurite that sends the body of each blob read one byte at a time.

    Each byte comes well within the read timeout, so no silence is ever long enough to time
    out: only a deadline on the whole answer ends the request. Listings pass at full speed.
    """

    def __init__(
        self, upstream: tuple[str, int], seconds_per_byte: float, *, listings: bool = False
    ) -> None:
        super().__init__(*upstream)
        self._listings = listings
        self._seconds_per_byte = seconds_per_byte
        self.trickling = True

    def __exit__(self, *_: object) -> None:
        self.trickling = False
        super().__exit__()

    async def _answer(self, head: bytes, response: bytes, writer: asyncio.StreamWriter) -> None:
        request_line = head.split(b"\r\n", 1)[0]
        slow = request_line.startswith(b"GET ") and (
            self._listings or b"comp=list" not in request_line
        )
        if not slow:
            await super()._answer(head, response, writer)
            return
        split = response.index(b"\r\n\r\n") + 4
        writer.write(response[:split])
        for index in range(split, len(response)):
            if not self.trickling:
                writer.write(response[index:])
                break
            writer.write(response[index : index + 1])
            await writer.drain()
            await asyncio.sleep(self._seconds_per_byte)
        await writer.drain()


@pytest.mark.parametrize("size", [3_000, 5 * TEST_BLOCK_SIZE], ids=["whole", "ranges"])
def test_an_answer_that_trickles_in_has_a_deadline_and_is_retried(
    azurite: Azurite, container: ContainerClient, tmp_path: Path, size: int
) -> None:
    # Each byte came within the read timeout, so a download of a few KB took hours.
    container.upload_blob("d/a.bin", os.urandom(size))
    with TrickleProxy((azurite.host, azurite.port), seconds_per_byte=0.02) as proxy:
        store = BlobDatastore.from_connection_string(
            azurite.connection_string.replace(f":{azurite.port}/", f":{proxy.port}/"),
            container.container_name,
            block_size=TEST_BLOCK_SIZE,
            retry=RequestRetryPolicy(attempts=2, base_delay=0.01, max_delay=0.02),
            timeouts=RequestTimeouts(connect=0.3, read=0.3, min_send_rate=64 * 1024),
        )

        def stop() -> None:
            proxy.trickling = False

        started = time.monotonic()
        with pytest.raises(TransferFailedError, match="failed 2 times.*Timeout"):
            _within(20, lambda: store.download("d/", tmp_path / "out"), stop)
        assert time.monotonic() - started < 10
    assert not (tmp_path / "out" / "d" / "a.bin").exists()
    assert list((tmp_path / "out").rglob(f"*{PARTIAL_SUFFIX}")) == []


def test_a_listing_that_trickles_in_has_a_deadline_too(
    azurite: Azurite, container: ContainerClient
) -> None:
    container.upload_blob("d/a.bin", b"a")
    with TrickleProxy((azurite.host, azurite.port), 0.02, listings=True) as proxy:
        store = BlobDatastore.from_connection_string(
            azurite.connection_string.replace(f":{azurite.port}/", f":{proxy.port}/"),
            container.container_name,
            retry=RequestRetryPolicy(attempts=2, base_delay=0.01, max_delay=0.02),
            timeouts=RequestTimeouts(connect=0.3, read=0.3, min_send_rate=64 * 1024 * 1024),
        )

        def stop() -> None:
            proxy.trickling = False

        with pytest.raises(TransferFailedError, match="failed 2 times.*Timeout"):
            _within(20, store.list, stop)


class FailingCredential:
    """An azure-identity credential on a machine where none of its sources is configured."""

    def get_token(self, *scopes: str, **options: object) -> object:
        from azure.core.exceptions import ClientAuthenticationError

        raise ClientAuthenticationError(
            "DefaultAzureCredential failed to retrieve a token from the included credentials."
        )


def test_a_credential_that_cannot_get_a_token_is_an_access_error_not_retried(
    azurite: Azurite, container: ContainerClient, tmp_path: Path
) -> None:
    # The azure-identity exception escaped as it was, and a credential of the wrong type as
    # an AttributeError at the first request.
    store = BlobDatastore.with_credential(
        azurite.account_url,
        container.container_name,
        FailingCredential(),  # type: ignore[arg-type]
    )
    with pytest.raises(StorageAccessError, match="could not authorise.*not retried"):
        store.upload_folder(write_tree(tmp_path / "s", {"a": b"a"}), "d")
    with pytest.raises(InvalidInputError, match="get_token"):
        BlobDatastore.with_credential(azurite.account_url, container.container_name, None)  # type: ignore[arg-type]


def test_a_linked_folder_in_a_folder_datastore_is_listed_and_never_overwritten_unasked(
    local_store: LocalDatastore, tmp_path: Path
) -> None:
    # The listing of "" did not enter linked folders, while that of "data/" did: an upload
    # that listed "" replaced the file under the link without overwrite=True.
    elsewhere = write_tree(tmp_path / "big-disk", {"x.txt": b"original"})
    (local_store.folder / "data").symlink_to(elsewhere)
    (local_store.folder / "loop").symlink_to(local_store.folder)
    assert [f.name for f in local_store.list()] == ["data/x.txt"]
    report = local_store.upload_folder(write_tree(tmp_path / "s", {"data/x.txt": b"new"}))
    assert (report.files, report.skipped_existing) == (0, 1)
    assert (elsewhere / "x.txt").read_bytes() == b"original"


# ---- an interrupt while the engine runs on its own loop in a worker thread ----------------------

INTERRUPTED_INSIDE_A_LOOP = """
import asyncio, os, sys, time
from himl_tasks.storage import LocalDatastore

class Slow:
    advances = 0

    def start(self, files, total_bytes):
        pass

    def advance(self, nbytes):
        Slow.advances += 1
        if Slow.advances == 2:
            print("moving", flush=True)
        time.sleep(0.05)

    def file_done(self):
        pass

async def main():
    # Called from a coroutine, the sync API runs the transfer on a loop of its own in a worker
    # thread, as in a notebook or a Prefect async task.
    LocalDatastore(sys.argv[1]).download("d/", sys.argv[2], show_progress=Slow())

# No asyncio.run: an interrupt is then a KeyboardInterrupt, as in Jupyter.
loop = asyncio.new_event_loop()
try:
    loop.run_until_complete(main())
    print("finished", flush=True)
except KeyboardInterrupt:
    print(f"interrupted after {Slow.advances} chunks", flush=True)
"""


def test_an_interrupt_stops_a_transfer_run_from_inside_an_event_loop(
    local_store: LocalDatastore, tmp_path: Path
) -> None:
    # The interrupt reached the caller only once the whole transfer had finished: the worker
    # thread was waited for, and nothing told its loop to stop.
    write_tree(local_store.folder, {f"d/{i:02}.bin": os.urandom(64 * 1024) for i in range(60)})
    out = tmp_path / "out"
    child = subprocess.Popen(
        [sys.executable, "-c", INTERRUPTED_INSIDE_A_LOOP, str(local_store.folder), str(out)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    assert child.stdout.readline() == "moving\n"
    child.send_signal(signal.SIGINT)
    said = child.communicate(timeout=60)[0]
    assert said.startswith("interrupted after"), said
    assert int(said.split()[2]) < 40  # of the 60 files, 50 ms each
    assert list(out.rglob(f"*{PARTIAL_SUFFIX}")) == []
    assert all(f.stat().st_size == 64 * 1024 for f in out.rglob("*.bin"))


# ---- a file needing more blocks than a blob may have --------------------------------------------


def test_a_file_needing_more_blocks_than_a_blob_may_have_is_sent_in_bigger_ones(
    blob_store: BlobDatastore,
    container: ContainerClient,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Azure refuses a block list of more than 50,000 blocks (Azurite does not check): with a
    # small block_size, a big file was sent whole, block by block, and then refused. The limit
    # is lowered here so that a small file meets it.
    monkeypatch.setattr(blob_module, "MAX_BLOCKS", 4, raising=False)
    data = os.urandom(10 * TEST_BLOCK_SIZE + 1)
    blob_store.upload_folder(write_tree(tmp_path / "s", {"big.bin": data}), "d")
    committed, _ = container.get_blob_client("d/big.bin").get_block_list("committed")
    assert len(committed) <= 4
    assert container.download_blob("d/big.bin").readall() == data


# ---- a file that appears at the destination after the plan, without overwrite ------------------


@pytest.mark.parametrize("size", [10, 5 * TEST_BLOCK_SIZE], ids=["one-request", "blocks"])
def test_an_upload_without_overwrite_keeps_a_file_another_writer_stored_meanwhile(
    datastore: Datastore, tmp_path: Path, size: int
) -> None:
    # The plan saw no file, so the upload replaced the one another writer stored while it ran.
    theirs = write_tree(tmp_path / "theirs", {"a.bin": b"their bytes"})
    ours = write_tree(tmp_path / "ours", {"a.bin": os.urandom(size)})

    def another_writer_stores_it() -> None:
        datastore.upload_folder(theirs, "d")  # from another loop, in a worker thread

    report = datastore.upload_folder(
        ours, "d", show_progress=Hooked(on_start=another_writer_stores_it)
    )

    assert (report.files, report.skipped_existing) == (0, 1)
    datastore.download("d/", tmp_path / "out")
    assert read_tree(tmp_path / "out") == {"d/a.bin": b"their bytes"}


def test_a_download_without_overwrite_keeps_a_file_written_meanwhile(
    datastore: Datastore, tmp_path: Path
) -> None:
    datastore.upload_folder(write_tree(tmp_path / "s", {"a.bin": os.urandom(5 * 65536)}), "d")
    out = tmp_path / "out"

    def another_writer_writes_it() -> None:
        write_tree(out, {"d/a.bin": b"their bytes"})

    report = datastore.download("d/", out, show_progress=Hooked(on_start=another_writer_writes_it))

    assert (report.files, report.skipped_existing) == (0, 1)
    assert read_tree(out) == {"d/a.bin": b"their bytes"}


def test_an_upload_retried_after_its_answer_was_lost_counts_as_sent(
    azurite: Azurite, container: ContainerClient, tmp_path: Path
) -> None:
    # Without overwrite a write is conditional (If-None-Match: *); its retry after a lost answer
    # finds the blob it wrote itself, which must count as sent, not as another writer's.
    with FaultyProxy(azurite.host, azurite.port) as proxy:
        store = BlobDatastore.from_connection_string(
            azurite.connection_string.replace(f":{azurite.port}/", f":{proxy.port}/"),
            container.container_name,
            retry=RequestRetryPolicy(attempts=3, base_delay=0.01, max_delay=0.02),
        )
        proxy.fail_next(1, "none")  # the listing
        proxy.fail_next(1, "lost")  # the write is done, its answer lost
        report = store.upload_folder(write_tree(tmp_path / "s", {"a.bin": b"ours"}), "d")
        assert proxy.requests == 4  # listing, write, its retry (409), and the check of the MD5
    assert (report.files, report.skipped_existing) == (1, 0)
    assert container.download_blob("d/a.bin").readall() == b"ours"


# ---- names a listing cannot carry ---------------------------------------------------------------


@pytest.mark.parametrize("character", ["\ufffe", "\uffff"])
def test_a_name_with_a_character_xml_cannot_carry_is_refused_before_it_breaks_listings(
    datastore: Datastore, tmp_path: Path, character: str
) -> None:
    # Stored, the blob made every later listing of its container fail (HTTP 500, retried).
    source = write_tree(tmp_path / "s", {f"a{character}b.txt": b"x", "ok.txt": b"ok"})
    with pytest.raises(UnusableNamesError, match=f"U\\+{ord(character):04X}"):
        datastore.upload_folder(source, "d")
    assert datastore.list() == []


# ---- prefixes and names longer than anything stored ---------------------------------------------


@pytest.mark.parametrize("length", [300, 2_000, 100_000])
def test_a_prefix_or_name_longer_than_anything_stored_matches_nothing(
    datastore: Datastore, tmp_path: Path, length: int
) -> None:
    # A blob datastore asked the service, which refused the request (HTTP 431, no advice); a
    # folder datastore failed with "name too long" where the answer is: no such file.
    datastore.upload_files([write_tree(tmp_path / "s", {"a": b"a"}) / "a"], "d")
    long = "d/" + "x" * length
    assert datastore.list(long) == []
    assert datastore.exists(long) is False
    assert datastore.download(long, tmp_path / "out", missing_ok=True).files == 0
    assert datastore.delete(long).files == 0
    assert [f.name for f in datastore.list()] == ["d/a"]


@pytest.mark.parametrize(
    ("suffix", "what"),
    [("?sv=1&sig=SECRET", "query string"), ("#part", "fragment"), ("@", "user name")],
)
def test_an_account_url_with_a_query_fragment_or_password_is_refused_without_echoing_it(
    azurite: Azurite, suffix: str, what: str
) -> None:
    # They were accepted and every request failed later, as a wrong credential (HTTP 403) or a
    # bad request.
    url = azurite.account_url + suffix
    if suffix == "@":
        url = azurite.account_url.replace("://", "://user:SECRET@")
    with pytest.raises(InvalidInputError, match=what) as refused:
        BlobDatastore.with_account_key(url, "ok-name", "name", azurite.account_key)
    assert "SECRET" not in str(refused.value)


def test_a_folder_datastore_on_a_file_says_it_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"")
    with pytest.raises(InvalidInputError, match="it is a file"):  # was "File exists (EEXIST)"
        LocalDatastore(tmp_path / "f", create=True)
    with pytest.raises(StorageError, match="is a file, not a folder"):  # was "does not exist"
        LocalDatastore(tmp_path / "f").list()


@pytest.mark.parametrize("replacement", ["fifo", "folder"])
def test_a_source_replaced_by_a_fifo_or_folder_after_the_plan_fails_without_hanging(
    datastore: Datastore, tmp_path: Path, replacement: str
) -> None:
    # Opening the fifo to read it waited for a writer forever.
    source = write_tree(tmp_path / "s", {"a.bin": b"a"})
    path = source / "a.bin"

    def replace_it() -> None:
        path.unlink()
        if replacement == "fifo":
            os.mkfifo(path)
        else:
            path.mkdir()

    def upload() -> object:
        return datastore.upload_folder(source, "d", show_progress=Hooked(on_start=replace_it))

    with pytest.raises((InvalidInputError, LocalFileError)) as failed:
        _within(10, upload, _open_fifo_for_writing(path))
    assert str(path) in str(failed.value)
    assert datastore.list() == []
