# ruff: noqa: F811 (the fixtures of tests/backends are imported, and named as arguments)
"""A job planned once runs to completion: its resubmissions read the same plan."""

from __future__ import annotations

from pathlib import Path

import pytest

import himl_tasks.backends.base
from himl_tasks.backends.local.backend import LocalBackend
from himl_tasks.backends.local.clusters import Preemption
from himl_tasks.datasets import DatasetConfig, ResolvedDataset
from himl_tasks.job_spec import JobSpec, Priority
from himl_tasks.jobs.identity import job_identity
from himl_tasks.jobs.run_to_completion import ResubmitPolicy, run_to_completion
from himl_tasks.jobs.submit_once import submit_once
from himl_tasks.runs import FailureKind, RunRef, RunState
from himl_tasks.snapshot import Snapshot
from tests.backends.conftest import project, write_script  # noqa: F401 (fixtures)
from tests.conftest import write_tree


class CountingBackend(LocalBackend):
    """The local backend, recording each dataset it resolves."""

    resolved: list[str]

    def resolve_dataset(self, config: DatasetConfig) -> ResolvedDataset:
        self.resolved.append(config.name)
        return super().resolve_dataset(config)


def test_a_lost_job_is_resubmitted_from_its_plan_resolving_and_selecting_nothing_again(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = CountingBackend(tmp_path / "workspace")
    backend.resolved = []
    selections: list[Path] = []
    select = himl_tasks.backends.base.select_snapshot

    def counted_select(root: Path, ignored: tuple[str, ...]) -> Snapshot:
        selections.append(root)
        return select(root, ignored)

    monkeypatch.setattr(himl_tasks.backends.base, "select_snapshot", counted_select)
    backend.create_compute_cluster(
        "spot", preemption=Preemption(after_seconds=0.2, max_preemptions=1)
    )
    backend.datastore().upload_folder(write_tree(tmp_path / "src", {"a.txt": b"x"}), "scans")
    write_script(project, "train.py", "import time\ntime.sleep(1)\n")
    spec = JobSpec(
        entry_script="train.py",
        snapshot_root=project,
        compute="spot",
        priority=Priority.LOW_PRIORITY,
        input_datasets=["scans"],
    )
    lost: list[RunState] = []

    def watch(ref: RunRef) -> RunState:
        state = backend.wait(ref, timeout=60)
        if not state.succeeded:
            lost.append(state)
            backend.register_dataset("scans", "", "scans")  # newer data, while it was lost
        return state

    # As `run_job` does: planned once, one identity, every submission from the plan.
    plan = backend.plan(spec)
    identity = job_identity(plan, workspace="ws")
    result = run_to_completion(
        backend,
        plan,
        submit=lambda p: submit_once(backend, p, identity)[0],
        watch=watch,
        policy=ResubmitPolicy(delay_seconds=0),
    )

    assert result.state.succeeded, result.state.error
    assert [s.failure_kind for s in lost] == [FailureKind.PREEMPTED]
    assert backend.resolved == ["scans"] and selections == [project]
    first, second = (backend.registry.get_run(r.split(":")[1]) for r in result.attempts)
    assert first is not None and second is not None
    assert [i.version for i in second.launch_plan.inputs] == [1]  # the planned version
    assert second.launch_plan.resume_from == result.attempts[0]
    assert second.submission_id == f"{identity}.2"
