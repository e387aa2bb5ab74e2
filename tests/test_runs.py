"""Recovery ids and the most recent run."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from himl_tasks.errors import InvalidInputError, RunNotFoundError
from himl_tasks.runs import (
    RunRef,
    parse_recovery_id,
    read_most_recent_run,
    split_recovery_id,
    write_most_recent_run,
)


def test_recovery_ids_parse_with_and_without_the_experiment(tmp_path: Path) -> None:
    assert parse_recovery_id("exp:exp_123_ab") == ("exp", "exp_123_ab")
    assert parse_recovery_id("exp_123_ab") == ("", "exp_123_ab")
    assert parse_recovery_id("HD_0b1e-22_3") == ("", "HD_0b1e-22_3")  # a HyperDrive child
    for bad in ("", "a:b:c", "exp:"):
        with pytest.raises(InvalidInputError, match="not a run recovery id"):
            parse_recovery_id(bad)
    with pytest.raises(RunNotFoundError, match="no run was submitted"):
        read_most_recent_run(tmp_path / "most_recent_run.txt")


def test_split_recovery_id_is_hi_mls_guessing_the_experiment_of_a_bare_id() -> None:
    # health_azure/utils.py split_recovery_id: its pattern, and ValueError for anything else.
    assert split_recovery_id("exp:run_1") == ("exp", "run_1")
    assert split_recovery_id("my_exp_1612345678_ab12cd") == ("my_exp", "my_exp_1612345678_ab12cd")
    assert split_recovery_id("train_42") == ("train", "train_42")
    for bad in ("a:b:c", "0b1e22aa-1234", "HD_0b1e-22_3", "noseparator", "train_42\n"):
        with pytest.raises(ValueError, match="format"):
            split_recovery_id(bad)
    for no_run in ("exp:", ":", " exp: "):
        with pytest.raises(ValueError, match="names no run"):
            split_recovery_id(no_run)


def test_most_recent_run_is_never_seen_half_written(tmp_path: Path) -> None:
    # A notebook reads the file while the next submission writes it (or the submitter is
    # killed while writing): it holds the previous id or the new one, nothing else.
    ids = {RunRef("exp", f"exp_{n}_{'ab' * 40}").recovery_id for n in range(2)}
    write_most_recent_run(tmp_path, RunRef("exp", f"exp_0_{'ab' * 40}"))
    writing = True
    seen: set[str] = set()

    def read_while_written() -> None:
        while writing:
            seen.add((tmp_path / "most_recent_run.txt").read_text(encoding="utf-8").strip())

    reader = threading.Thread(target=read_while_written)
    reader.start()
    try:
        for attempt in range(2000):
            write_most_recent_run(tmp_path, RunRef("exp", f"exp_{attempt % 2}_{'ab' * 40}"))
    finally:
        writing = False
        reader.join()

    assert seen <= ids
    assert [p.name for p in tmp_path.iterdir()] == ["most_recent_run.txt"]


def test_most_recent_run_that_is_no_file_of_text_is_one_clear_error(tmp_path: Path) -> None:
    # Every reader of the file (himl PATTERN, himl-download/himl-tb --latest_run_file,
    # get_most_recent_run) got a UnicodeDecodeError or IsADirectoryError traceback; a fifo
    # there waited for a writer for ever, and /dev/zero was read until memory ran out.
    (tmp_path / "binary.txt").write_bytes(b"\xa3\xff" * 10)
    (tmp_path / "big.txt").write_text("exp:exp_1\n" + " " * 10_000)
    os.mkfifo(tmp_path / "fifo.txt")
    cases = {
        tmp_path / "binary.txt": "no UTF-8 text",
        tmp_path / "big.txt": "over 4096 bytes",
        tmp_path / "fifo.txt": "not a file",
        tmp_path: "not a file",
        Path("/dev/zero"): "not a file",
        tmp_path / "binary.txt" / "x": "cannot be read: Not a directory",
    }
    for path, why in cases.items():
        with pytest.raises(InvalidInputError, match=why):
            read_most_recent_run(path)
    with pytest.raises(InvalidInputError, match="str or path, not NoneType"):
        read_most_recent_run(None)  # type: ignore[arg-type]
    # A byte order mark, as a Windows editor saves the file, is no part of the id.
    (tmp_path / "bom.txt").write_bytes(b"\xef\xbb\xbfexp:exp_1\r\n")
    assert read_most_recent_run(tmp_path / "bom.txt") == "exp:exp_1"
