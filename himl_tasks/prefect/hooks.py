"""Flow hooks that leave no job running after its flow run ends early, and their record.

Each job a task submits is recorded under its flow run, in a Prefect variable
(`himl-started-<flow run id>`: the workspace block's saved name and the run's recovery id),
because the hook that reads the record may run in another process: a worker runs
`on_cancellation` hooks itself when it has killed the flow's process. A job submitted
through an unsaved block is also remembered in this process, the only place its workspace
is known. Tasks of one flow run that submit at once in this process's threads are recorded
in turn; tasks in several processes (a distributed task runner) may still overwrite one
another's entry, as the record is one variable read and written back whole.

Example:
    ```python
    from prefect import flow

    from himl_tasks import JobSpec
    from himl_tasks.prefect import cancel_started_jobs, forget_started_jobs, run_job


    @flow(
        on_cancellation=[cancel_started_jobs],
        on_crashed=[cancel_started_jobs],
        on_failure=[cancel_started_jobs],
        on_completion=[forget_started_jobs],
    )
    def train(workspace_block: str = "local-workspace/demo") -> None:
        run_job(workspace_block, JobSpec(entry_script="train.py"))
    ```
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from prefect.variables import Variable

from himl_tasks.backends.base import Backend
from himl_tasks.errors import HimlError
from himl_tasks.prefect.workspaces import WorkspaceBlockOrName, backend_for, saved_name
from himl_tasks.runs import RunRef

logger = logging.getLogger(__name__)

STARTED_VARIABLE_PREFIX = "himl-started-"

# Backends of jobs submitted through unsaved blocks, by flow run id and recovery id.
_unsaved: dict[str, dict[str, Backend]] = {}
_unsaved_lock = threading.Lock()
# One read-and-write of a flow run's record at a time in this process.
_record_lock = threading.Lock()


def remember_started(workspace_block: WorkspaceBlockOrName, backend: Backend, ref: RunRef) -> None:
    """Records a submission under the current flow run, for `cancel_started_jobs`.

    Outside a flow run there is nothing to record it under, and nothing is recorded.
    """
    from prefect.runtime import flow_run

    if not flow_run.id:
        return
    name = saved_name(workspace_block)
    if name is None:
        with _unsaved_lock:
            _unsaved.setdefault(str(flow_run.id), {})[ref.recovery_id] = backend
    variable = STARTED_VARIABLE_PREFIX + str(flow_run.id)
    # Read, then written back whole: the tasks of a flow run that submit at once (in threads)
    # take turns, else one loses another's entry, or the first two writes of the variable
    # collide (409 Conflict, which failed a task whose job was already submitted).
    with _record_lock:
        started: Any = Variable.get(variable, default=[])
        entries = started if isinstance(started, list) else []
        entries.append({"workspace": name or "", "run": ref.recovery_id})
        Variable.set(variable, entries, overwrite=True)


def cancel_started_jobs(flow: object, flow_run: Any, state: object) -> None:
    """A flow hook: cancels the jobs this flow run submitted that are still going.

    Use it for `on_cancellation`, `on_crashed` and `on_failure`: a flow run that ends early
    (or whose process a worker killed) leaves no job running. Waiting tasks also notice a
    cancellation themselves; this hook covers a flow process that was killed first. A job
    it cannot reach (its block deleted, its workspace unreachable) is logged with what to do,
    and the others are still canceled.
    """
    name = STARTED_VARIABLE_PREFIX + str(flow_run.id)
    started: Any = Variable.get(name, default=[])
    with _unsaved_lock:
        here = _unsaved.pop(str(flow_run.id), {})
    for item in started if isinstance(started, list) else []:
        recovery_id, workspace = str(item["run"]), str(item["workspace"])
        try:
            backend = backend_for(workspace) if workspace else here.get(recovery_id)
            if backend is None:
                logger.error(
                    "run %s may still be running: it was submitted through an unsaved workspace "
                    "block in another process, so it cannot be reached from here. Cancel it "
                    "where it runs, and save the block (`block.save(name)`) so this hook can",
                    recovery_id,
                )
                continue
            ref = backend.get_run_ref(recovery_id)
            if not backend.get_state(ref).is_terminal:
                backend.cancel(ref)
        except HimlError as error:
            logger.error(
                "run %s may still be running: it could not be canceled (%s). Cancel it by hand",
                recovery_id,
                error,
            )
    Variable.unset(name)


def forget_started_jobs(flow: object, flow_run: Any, state: object) -> None:
    """A flow hook for `on_completion`: drops the record of the jobs the flow run submitted."""
    with _unsaved_lock:
        _unsaved.pop(str(flow_run.id), None)
    Variable.unset(STARTED_VARIABLE_PREFIX + str(flow_run.id))
