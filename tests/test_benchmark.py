"""The transfer benchmark's correctness: every tool moves the same files and bytes.

The benchmark's speed is not tested here (see benchmarks/transfer.py); this runs it small.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.transfer import check_targets, main, report, run, same_files
from himl_tasks.testing.azurite import Azurite
from tests.conftest import write_tree


# adlfs (a peer, not this project) hands aiohttp whole multi-MB bodies, and aiohttp warns.
@pytest.mark.filterwarnings("ignore:Sending a large body directly:ResourceWarning")
def test_every_tool_reproduces_the_source_files(azurite: Azurite, tmp_path: Path) -> None:
    results = run(
        azurite,
        tmp_path,
        small_count=30,
        small_size=2048,
        big_size=9 * 1024 * 1024,
        huge_size=3 * 1024 * 1024,
    )

    cases = {(m.tool, m.case) for m in results}
    for tool in ("himl-tasks", "naive loop", "adlfs", "prefect-azure"):
        for case in ("small upload", "small download", "big upload", "big download"):
            assert (tool, case) in cases
    assert ("himl-tasks", "small re-upload") in cases
    assert ("himl-tasks", "small listing") in cases
    assert ("azure-storage-blob x8", "big download") in cases
    assert all(m.verified for m in results), [(m.tool, m.case) for m in results if not m.verified]
    assert "Targets:" in report(results)
    targets = check_targets(results)
    assert len(targets) == 6
    assert "one listing alone takes" in next(t for t in targets if "re-upload" in t)


def test_the_check_notices_a_wrong_or_missing_file(tmp_path: Path) -> None:
    source = {"a/1.bin": "c4ca4238a0b923820dcc509a6f75849b"}  # md5("1")
    write_tree(tmp_path / "good", {"data/a/1.bin": b"1"})
    write_tree(tmp_path / "bad", {"data/a/1.bin": b"2"})
    write_tree(tmp_path / "extra", {"data/a/1.bin": b"1", "data/a/2.bin": b"1"})

    assert same_files(source, tmp_path / "good")
    assert not same_files(source, tmp_path / "bad")
    assert not same_files(source, tmp_path / "extra")
    assert not same_files(source, tmp_path / "empty")


@pytest.mark.filterwarnings("ignore:Sending a large body directly:ResourceWarning")
def test_the_command_runs_end_to_end_and_prints_the_table(
    capsys: pytest.CaptureFixture[str],
) -> None:
    exit_code = main(["--small-count", "12", "--big-mb", "1", "--huge-mb", "0", "--repeat", "1"])

    printed = capsys.readouterr().out
    assert exit_code == 0
    assert "small re-upload" in printed
    assert "MISMATCH" not in printed


def test_the_local_run_benchmark_times_completed_runs() -> None:
    from benchmarks.local_runs import measure

    overheads, bare = measure(2)

    assert len(overheads) == 2 and len(bare) == 2
    assert all(seconds > 0 for seconds in overheads + bare)
