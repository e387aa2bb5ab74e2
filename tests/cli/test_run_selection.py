"""Where hi-ml's console scripts look for `most_recent_run.txt` when no run is given."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from himl_tasks.cli.run_selection import find_recovery_file


def test_the_recovery_file_is_looked_for_where_the_library_looks_for_config_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Up to the project root on PYTHONPATH (its highest folder there), as `config.json` is."""
    project = tmp_path / "project"
    source = project / "src"
    here = source / "package"
    here.mkdir(parents=True)
    (project / "most_recent_run.txt").write_text("train:train_1_abc\n")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(source), str(project)]))

    assert find_recovery_file(here) == project / "most_recent_run.txt"

    monkeypatch.setenv("PYTHONPATH", str(source))
    assert find_recovery_file(here) is None
