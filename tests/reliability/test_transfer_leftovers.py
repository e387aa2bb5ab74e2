"""Temporary files of transfers that died are removed by the next one; a live one's never are.

Issue 11, storage item 4: a download killed with SIGKILL left its `.*.himl-partial` file forever,
even after a successful re-run into the same folder. Here real processes download from Azurite
and are killed with SIGKILL in the middle of writing a file, while another stays alive.
"""

from __future__ import annotations

import fcntl
import select
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from azure.storage.blob import ContainerClient

from himl_tasks.storage import BlobDatastore, LocalDatastore
from himl_tasks.storage.partials import PARTIAL_SUFFIX
from himl_tasks.testing.azurite import Azurite
from tests.conftest import read_tree, write_tree

# A download that stops for good once it has written its first bytes: it reports "writing" and
# sleeps while its temporary file is open, so the test can kill it (or keep it alive) right there.
STALLED_DOWNLOAD = """
import sys, time
from himl_tasks.storage import BlobDatastore

class StopWhileWriting:
    def start(self, files, total_bytes):
        pass

    def advance(self, nbytes):
        print("writing", flush=True)
        time.sleep(120)

    def file_done(self):
        pass

connection_string, container, prefix, output = sys.argv[1:]
store = BlobDatastore.from_connection_string(connection_string, container)
store.download(prefix, output, show_progress=StopWhileWriting())
"""


def partials(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.name.endswith(PARTIAL_SUFFIX))


@pytest.fixture
def stalled_downloads(
    azurite: Azurite, container: ContainerClient
) -> Iterator[list[subprocess.Popen[str]]]:
    """Processes started with `start_stalled`; any still running at the end is killed."""
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait(10)
        if process.stdout is not None:
            process.stdout.close()


def start_stalled(
    started: list[subprocess.Popen[str]],
    azurite: Azurite,
    container: ContainerClient,
    prefix: str,
    output: Path,
) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            STALLED_DOWNLOAD,
            azurite.connection_string,
            container.container_name,
            prefix,
            str(output),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    started.append(process)
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], 60)
    assert ready, "the download did not start writing within 60 s"
    assert process.stdout.readline() == "writing\n"
    return process


def test_a_download_killed_mid_file_leaves_nothing_once_the_next_one_ran(
    azurite: Azurite,
    container: ContainerClient,
    blob_store: BlobDatastore,
    tmp_path: Path,
    stalled_downloads: list[subprocess.Popen[str]],
) -> None:
    files = {"run/a.bin": b"a" * 100_000, "run/b.bin": b"b" * 1000}
    for name, data in files.items():
        container.upload_blob(name, data)
    output = tmp_path / "out"

    killed = start_stalled(stalled_downloads, azurite, container, "run/a.bin", output)
    [dead] = partials(output / "run")
    killed.send_signal(signal.SIGKILL)
    assert killed.wait(10) == -signal.SIGKILL
    assert dead.exists()  # SIGKILL gave it no chance to clean up

    live = start_stalled(stalled_downloads, azurite, container, "run/b.bin", output)
    [alive] = [p for p in partials(output / "run") if p != dead]

    report = blob_store.download("run/a.bin", output)

    assert report.files == 1
    assert (output / "run" / "a.bin").read_bytes() == files["run/a.bin"]
    assert partials(output / "run") == [alive]  # the dead one's removed, the live one's kept
    assert live.poll() is None

    live.send_signal(signal.SIGKILL)
    live.wait(10)
    blob_store.download("run/", output, overwrite=True)
    assert partials(output / "run") == []
    assert read_tree(output) == files


def test_an_upload_into_a_folder_datastore_removes_dead_partials_and_keeps_live_ones(
    local_store: LocalDatastore, tmp_path: Path
) -> None:
    folder = local_store.folder / "d"
    folder.mkdir()
    # As an earlier release named them, and as this one does: a dead writer holds no lock.
    dead_old_style = folder / f".a.txt.1234abcd{PARTIAL_SUFFIX}"
    dead = folder / f".{'0' * 32}{PARTIAL_SUFFIX}"
    alive = folder / f".{'1' * 32}{PARTIAL_SUFFIX}"
    for path in (dead_old_style, dead, alive):
        path.write_bytes(b"half a file")
    with alive.open("rb") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # as a live writer holds it, in any process

        report = local_store.upload_folder(write_tree(tmp_path / "s", {"a.txt": b"a"}), "d")

        assert report.files == 1
        assert sorted(p.name for p in folder.iterdir()) == sorted(["a.txt", alive.name])
    assert [f.name for f in local_store.list()] == ["d/a.txt"]
