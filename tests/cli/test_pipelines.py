"""`himl status` and `himl resubmit` of pipeline runs, on real local pipelines."""

from __future__ import annotations

import json
from pathlib import Path

from himl_tasks.backends.local.backend import LocalBackend
from himl_tasks.runs import RunStatus
from himl_tasks.testing.backend_contract import DEADLINE_SECONDS
from himl_tasks.testing.pipeline_contract import chain, make_raw
from tests.backends.test_backend_contract import LocalHarness
from tests.cli.conftest import himl
from tests.jobs.test_pipeline_submission import lost_once_chain


def harness_on(local: LocalBackend, tmp_path: Path) -> LocalHarness:
    (tmp_path / "jobs").mkdir()
    return LocalHarness(local, tmp_path / "jobs")


def test_status_shows_a_pipeline_run_with_its_steps_under_it(
    local: LocalBackend, tmp_path: Path
) -> None:
    harness = harness_on(local, tmp_path)
    make_raw(harness)
    ref = local.submit_pipeline(chain(harness))
    assert local.wait(ref, timeout=DEADLINE_SECONDS).succeeded
    steps = {s.step: s.run for s in local.pipeline_steps(ref)}

    code, out, _ = himl(local, "status", "all", "--json")

    assert code == 0
    rows = json.loads(out)
    # The steps' runs are under their pipeline run, not rows of their own.
    shown = [row["run_id"] for row in rows]
    assert ref.run_id in shown
    assert not {run.run_id for run in steps.values() if run is not None} & set(shown)
    (pipeline,) = [row for row in rows if row["run_id"] == ref.run_id]
    assert [
        (step["step"], step["run_id"], step["status"], step["reused_from"])
        for step in pipeline["steps"]
    ] == [(name, run.run_id if run else None, "Completed", None) for name, run in steps.items()]
    assert all("steps" not in row for row in rows if row["run_id"] != ref.run_id)

    code, out, _ = himl(local, "status", ref.run_id)

    assert code == 0
    lines = out.splitlines()
    at = next(i for i, line in enumerate(lines) if ref.run_id in line)
    below = "\n".join(lines[at + 1 :])
    for name, run in steps.items():
        assert f"step {name}" in below and run is not None and run.run_id in below


def test_resubmit_of_a_pipeline_run_resumes_its_lost_step(
    local: LocalBackend, tmp_path: Path
) -> None:
    harness = harness_on(local, tmp_path)
    ref = local.submit_pipeline(lost_once_chain(harness, tmp_path))
    assert local.wait(ref, timeout=DEADLINE_SECONDS).status is RunStatus.FAILED
    lost = {s.step: s.run for s in local.pipeline_steps(ref)}["train"]
    assert lost is not None

    code, out, _ = himl(local, "resubmit", ref.run_id)

    assert code == 0, out
    new_id = out.strip().rsplit(" as ", 1)[1]
    assert out.strip() == f"resubmitted {ref} as {new_id}"
    new = local.get_run_ref(new_id)
    assert local.wait(new, timeout=DEADLINE_SECONDS).succeeded
    assert new.run_id in {r.ref.run_id for r in local.list_runs() if r.parent_run_id is None}
    steps = {s.step: s for s in local.pipeline_steps(new)}
    train = steps["train"].run
    assert train is not None and train != lost
    assert local.submitted_spec(train).resume_from == lost.recovery_id
    # The completed step is reused: `himl status` says from which run.
    prep = {s.step: s.run for s in local.pipeline_steps(ref)}["prep"]
    assert prep is not None and steps["prep"].reused_from == prep
    code, out, _ = himl(local, "status", new.run_id, "--json")
    (row,) = json.loads(out)
    assert [(step["step"], step["reused_from"]) for step in row["steps"]] == [
        ("prep", prep.recovery_id),
        ("train", None),
    ]
    code, out, _ = himl(local, "status", new.run_id)
    assert f"reused from {prep.run_id}" in out
