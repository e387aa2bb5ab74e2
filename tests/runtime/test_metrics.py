"""Metrics logged from inside local jobs land in the workspace's registry."""

from __future__ import annotations

from pathlib import Path

from himl_tasks.backends.local.backend import LocalBackend
from himl_tasks.job_spec import JobSpec
from tests.backends.conftest import write_script


def test_metrics_from_many_jobs_at_once_are_all_recorded(tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path / "ws")
    project = tmp_path / "p"
    write_script(
        project,
        "metrics.py",
        """
        import os
        from himl_tasks.runtime import current_run, log_metric, log_metrics
        for step in range(100):
            log_metric("loss", step / 100, step=step)
        log_metrics({"accuracy": 0.9, "f1": 0.8})
        os.environ["RANK"] = "1"
        log_metric("loss", 99.0, step=100)  # only rank zero reports
        print("in-job half:", os.environ["HIML_IN_JOB"], type(current_run()).__module__)
        """,
    )
    refs = [
        backend.submit(JobSpec(entry_script="metrics.py", snapshot_root=project)) for _ in range(6)
    ]

    states = [backend.wait(ref, timeout=60) for ref in refs]

    assert all(s.succeeded for s in states), [s.error for s in states]
    for ref in refs:
        metrics = backend.get_metrics(ref)
        assert [m.step for m in metrics if m.name == "loss"] == list(range(100))
        assert {(m.name, m.value) for m in metrics if m.step is None} == {
            ("accuracy", 0.9),
            ("f1", 0.8),
        }
    log = "".join(backend.iter_logs(refs[0]))
    in_job = "himl_tasks.backends.local.in_job"
    assert f"in-job half: {in_job} {in_job}" in log


def test_report_progress_refuses_counts_that_are_not_a_progress() -> None:
    import pytest

    from himl_tasks.errors import InvalidInputError
    from himl_tasks.runtime import report_progress

    for done, total in [(5, 4), (-1, 4), (0, 0)]:
        with pytest.raises(InvalidInputError, match="0 <= epochs_done <= total_epochs"):
            report_progress(done, total)
    report_progress(4, 4)  # outside a run: only logged
