"""Attacks on local pipelines: processes killed mid-pipeline, damaged folders, odd input."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from himl_tasks.backends.local.backend import LocalBackend
from himl_tasks.jobs.pipeline_submission import pipeline_to_resubmit
from himl_tasks.runs import RunRef, RunStatus
from tests.backends.test_local_pipelines import chain, put_dataset, steps_of

SLOW_PREPROCESS = "import time\ntime.sleep(60)\n"


def _running_step(backend: LocalBackend, pipeline: RunRef, step: str) -> RunRef:
    deadline = time.monotonic() + 60
    while not (
        (steps := steps_of(backend, pipeline))
        and backend.get_state(steps[step]).status is RunStatus.RUNNING
    ):
        assert time.monotonic() < deadline and not backend.get_state(pipeline).is_terminal
        time.sleep(0.05)
    return steps[step]


def _kill_driver(backend: LocalBackend, pipeline: RunRef, *, supervisor: bool) -> None:
    row = backend.registry.get_run(pipeline.run_id)
    assert row is not None
    pid = row.supervisor_pid if supervisor else row.job_group
    assert pid is not None
    os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize("supervisor", [False, True], ids=["driver", "driver's supervisor"])
def test_a_pipeline_whose_driver_is_killed_leaves_no_step_running(
    backend: LocalBackend, project: Path, supervisor: bool
) -> None:
    put_dataset(backend, "raw", "abc")
    pipeline = backend.submit_pipeline(chain(project, preprocess=SLOW_PREPROCESS))
    step = _running_step(backend, pipeline, "preprocess")

    _kill_driver(backend, pipeline, supervisor=supervisor)

    assert backend.wait(pipeline, timeout=30).status is RunStatus.FAILED
    # A step going on unwatched would run beside the same step of a resubmission.
    assert backend.wait(step, timeout=30).is_terminal
    assert list(steps_of(backend, pipeline)) == ["preprocess"]
    resubmitted = pipeline_to_resubmit(backend, pipeline)
    assert resubmitted.step("preprocess").job.resume_from == step.recovery_id
