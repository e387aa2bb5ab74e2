"""Recovery ids and the most recent run."""

from __future__ import annotations

from pathlib import Path

import pytest

from himl_tasks.errors import InvalidInputError, RunNotFoundError
from himl_tasks.runs import read_most_recent_run, split_recovery_id


def test_recovery_ids_parse_with_and_without_the_experiment(tmp_path: Path) -> None:
    assert split_recovery_id("exp:exp_123_ab") == ("exp", "exp_123_ab")
    assert split_recovery_id("exp_123_ab") == ("", "exp_123_ab")
    for bad in ("", "a:b:c", "exp:"):
        with pytest.raises(InvalidInputError, match="not a run recovery id"):
            split_recovery_id(bad)
    with pytest.raises(RunNotFoundError, match="no run was submitted"):
        read_most_recent_run(tmp_path / "most_recent_run.txt")
