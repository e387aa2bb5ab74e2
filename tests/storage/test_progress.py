"""show_progress draws a bar with files and bytes on a terminal."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.conftest import write_tree


def test_show_progress_draws_files_and_bytes_on_a_terminal(tmp_path: Path) -> None:
    write_tree(tmp_path / "src", {f"f{i}.bin": b"x" * 1000 for i in range(3)})
    script = textwrap.dedent(
        f"""
        from himl_tasks.storage import LocalDatastore
        store = LocalDatastore({str(tmp_path / "store")!r}, create=True)
        store.upload_folder({str(tmp_path / "src")!r}, "d", show_progress=True)
        """
    )
    leader, follower = pty.openpty()
    env = {**os.environ, "COLUMNS": "120", "TERM": "xterm"}
    process = subprocess.Popen([sys.executable, "-c", script], stderr=follower, env=env)
    os.close(follower)
    output = b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:
            break
        if not chunk:
            break
        output += chunk
    assert process.wait(timeout=60) == 0
    os.close(leader)
    text = output.decode(errors="replace")
    assert "upload to store" in text
    assert "3/3 files" in text
    assert "3.0/3.0 kB" in text
