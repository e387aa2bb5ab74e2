"""The flow hooks against a real Prefect API and real local jobs."""

from __future__ import annotations

import logging
from pathlib import Path
from types import SimpleNamespace
from uuid import uuid4

import pytest
from prefect import flow
from prefect.runtime import flow_run
from prefect.variables import Variable

from himl_tasks.backends.local.backend import LocalBackend
from himl_tasks.prefect import LocalWorkspace, cancel_started_jobs, forget_started_jobs, submit_job
from himl_tasks.prefect.hooks import STARTED_VARIABLE_PREFIX
from himl_tasks.runs import FailureKind
from tests.prefect.conftest import epochs_spec


def test_a_failing_flow_run_cancels_the_jobs_it_left_running(
    workspace: tuple[str, LocalBackend], project: Path
) -> None:
    block, backend = workspace

    seen: dict[str, str] = {}

    @flow(on_failure=[cancel_started_jobs], on_completion=[forget_started_jobs])
    def abandons() -> None:
        seen["flow_run"] = str(flow_run.id)
        submit_job(block, epochs_spec(project, 100, 0.2))
        raise RuntimeError("the flow breaks while its job runs")

    with pytest.raises(RuntimeError):
        abandons()
    (run,) = backend.registry.runs()
    state = backend.wait(backend.get_run_ref(run.run_id), timeout=30)
    assert state.failure_kind is FailureKind.CANCELED
    assert Variable.get(STARTED_VARIABLE_PREFIX + seen["flow_run"]) is None  # record dropped


def test_a_job_submitted_through_an_unsaved_block_is_canceled_too(
    prefect_api: None, project: Path, tmp_path: Path
) -> None:
    backend = LocalBackend(tmp_path / "unsaved")
    seen: dict[str, str] = {}

    @flow(on_failure=[cancel_started_jobs])
    def abandons() -> None:
        seen["flow_run"] = str(flow_run.id)
        submit_job(LocalWorkspace(root=str(backend.root)), epochs_spec(project, 100, 0.2))
        raise RuntimeError("the flow breaks while its job runs")

    with pytest.raises(RuntimeError):
        abandons()
    (run,) = backend.registry.runs()
    assert backend.wait(backend.get_run_ref(run.run_id), timeout=30).failure_kind is (
        FailureKind.CANCELED
    )
    assert Variable.get(STARTED_VARIABLE_PREFIX + seen["flow_run"]) is None


def test_a_job_that_cannot_be_reached_is_reported_and_the_others_still_canceled(
    workspace: tuple[str, LocalBackend], project: Path, caplog: pytest.LogCaptureFixture
) -> None:
    block, backend = workspace
    running = backend.submit(epochs_spec(project, 100, 0.2))
    flow_run_id = uuid4()
    Variable.set(
        STARTED_VARIABLE_PREFIX + str(flow_run_id),
        [
            {"workspace": "local-workspace/deleted-since", "run": "exp:gone"},
            {"workspace": "", "run": "exp:submitted-by-another-process"},
            {"workspace": block, "run": running.recovery_id},
        ],
    )

    with caplog.at_level(logging.ERROR, logger="himl_tasks.prefect.hooks"):
        cancel_started_jobs(None, SimpleNamespace(id=flow_run_id), None)

    assert backend.wait(running, timeout=30).failure_kind is FailureKind.CANCELED
    reported = " ".join(record.getMessage() for record in caplog.records)
    assert "run exp:gone may still be running" in reported
    assert "LocalWorkspace(root='.himl').save('deleted-since')" in reported
    assert "run exp:submitted-by-another-process may still be running" in reported
    assert Variable.get(STARTED_VARIABLE_PREFIX + str(flow_run_id)) is None


def test_jobs_submitted_at_once_by_one_flow_run_are_all_recorded(
    workspace: tuple[str, LocalBackend], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Tasks of one flow run submit in threads (ThreadPoolTaskRunner); the record is read, then
    # written back whole, so two submissions that overlap must not lose one another's entry.
    import contextvars
    import threading
    import time

    from himl_tasks.prefect import hooks
    from himl_tasks.runs import RunRef

    block, backend = workspace
    slow_get = Variable.get

    def get(*args: object, **kwargs: object) -> object:
        value = slow_get(*args, **kwargs)  # type: ignore[arg-type]
        time.sleep(0.05)  # a busy Prefect API
        return value

    monkeypatch.setattr(hooks.Variable, "get", get)
    seen: dict[str, object] = {}

    @flow
    def submits_four() -> None:
        threads = [
            threading.Thread(
                target=contextvars.copy_context().run,
                args=(hooks.remember_started, block, backend, RunRef("e", f"run{i}")),
            )
            for i in range(4)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        seen["record"] = slow_get(STARTED_VARIABLE_PREFIX + str(flow_run.id))

    submits_four()
    assert sorted(e["run"] for e in seen["record"]) == [f"e:run{i}" for i in range(4)]  # type: ignore[attr-defined]
