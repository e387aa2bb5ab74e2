"""Attacks on local pipelines: processes killed mid-pipeline, damaged folders, odd input."""

from __future__ import annotations

import os
import shutil
import signal
import time
from pathlib import Path

import pytest

from himl_tasks.backends.local.backend import LocalBackend
from himl_tasks.backends.local.published_pipelines import PublishedPipelines
from himl_tasks.errors import ConfigurationError
from himl_tasks.jobs.pipeline_submission import lost_steps, pipeline_to_resubmit
from himl_tasks.pipeline_runs import PublishedPipeline
from himl_tasks.runs import RunRef, RunStatus
from himl_tasks.snapshot import Snapshot, select_snapshot
from tests.backends.test_local_pipelines import (
    chain,
    log_of,
    put_dataset,
    ran,
    run_pipeline,
    separate_chain,
    steps_of,
)
from tests.backends.test_local_publishing import pipeline as publishing_pipeline

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


def test_a_step_stopped_with_its_pipeline_lost_to_the_platform_is_resubmitted_resuming(
    backend: LocalBackend, project: Path
) -> None:
    put_dataset(backend, "raw", "abc")
    pipeline = backend.submit_pipeline(chain(project, preprocess=SLOW_PREPROCESS))
    step = _running_step(backend, pipeline, "preprocess")

    _kill_driver(backend, pipeline, supervisor=True)
    state = backend.wait(pipeline, timeout=30)
    assert backend.wait(step, timeout=30).is_terminal

    # The step did not fail: it was lost with its pipeline, and resumes when resubmitted.
    assert lost_steps(backend, pipeline, state) == {"preprocess": step}


def _publish(backend: LocalBackend, project: Path, name: str) -> PublishedPipeline:
    """Publishes a one-step pipeline in the workspace's folder (no Prefect deployment)."""
    spec = publishing_pipeline(project, name, line="as published")
    snapshots = {"prep": select_snapshot(project)}
    return PublishedPipelines(backend.root).publish(spec, snapshots, description="", endpoint="e")


def test_a_published_version_whose_kept_files_changed_is_refused_before_anything_runs(
    backend: LocalBackend, project: Path
) -> None:
    published = _publish(backend, project, "kept")
    store = PublishedPipelines(backend.root)
    assert store.version("kept", 1).pipeline().steps[0].job.snapshot_root.is_dir()
    kept = backend.root / "published" / "kept" / "1" / "steps" / "prep" / "prep.py"
    kept.write_text("print('changed by hand', flush=True)\n")

    with pytest.raises(ConfigurationError, match="changed since it was published"):
        backend.submit_published_pipeline(published.name)
    assert backend.list_runs() == []
    # As the message says: the same pipeline published again is a new, whole version.
    assert _publish(backend, project, "kept").version == 2
    assert store.version("kept", None).pipeline().steps[0].job.snapshot_root.is_dir()


def test_a_damaged_version_says_how_to_recover_and_recovering_as_told_works(
    backend: LocalBackend, project: Path
) -> None:
    _publish(backend, project, "kept")
    folder = backend.root / "published" / "kept"
    (folder / "²").mkdir()  # a name str.isdigit takes for a number, int() does not
    assert [p.version for p in backend.published_pipelines("kept")] == [1]
    (folder / "1" / "published.json").write_text("{")

    with pytest.raises(ConfigurationError, match="remove the folder") as raised:
        _publish(backend, project, "kept")
    shutil.rmtree(folder / "1")  # as the message says, then publish again
    assert str(folder / "1") in str(raised.value)
    assert _publish(backend, project, "kept").version == 1


def test_a_step_is_known_by_the_files_it_runs_though_they_change_while_it_is_submitted(
    backend: LocalBackend, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    put_dataset(backend, "raw", "abc")
    spec = separate_chain(project)
    run_pipeline(backend, spec)
    copy_to = Snapshot.copy_to

    def edited_before_the_copy(snapshot: Snapshot, destination: Path) -> None:
        train = snapshot.root / "train.py"
        if train.is_file():
            train.write_text(train.read_text() + "print('edited while submitted')\n")
        copy_to(snapshot, destination)

    monkeypatch.setattr(Snapshot, "copy_to", edited_before_the_copy)
    _, steps = run_pipeline(backend, spec)

    # train runs the edited file: it is not the earlier run of the file as it was.
    assert ran(steps) == ["train"]
    assert "edited while submitted" in log_of(backend, steps[1].run)  # type: ignore[arg-type]


def test_a_pipeline_whose_files_change_while_it_is_published_is_not_published(
    backend: LocalBackend, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    copy_to = Snapshot.copy_to

    def edited_before_the_copy(snapshot: Snapshot, destination: Path) -> None:
        script = snapshot.root / "prep.py"
        script.write_text(script.read_text() + "print('edited while published')\n")
        copy_to(snapshot, destination)

    monkeypatch.setattr(Snapshot, "copy_to", edited_before_the_copy)
    with pytest.raises(ConfigurationError, match="changed while it was published"):
        _publish(backend, project, "kept")
    assert backend.published_pipelines() == []
    monkeypatch.undo()
    assert _publish(backend, project, "kept").version == 1
    assert PublishedPipelines(backend.root).version("kept", 1).intact()
