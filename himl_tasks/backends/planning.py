"""Preparing a job once: the checks, the snapshot and the input versions, in a safe order.

Every backend plans a job the same way: first what can be checked without changing anything
(its compute, the datastores its outputs go to, and whatever the backend's own check refuses),
then the snapshot is selected and checked, and only then are the inputs resolved, because
resolving an input that exists only as a folder registers its version 1. A job refused for a
bad spec leaves nothing behind.
"""

from __future__ import annotations

from collections.abc import Callable

from himl_tasks.backends.base import Backend
from himl_tasks.job_spec import JobSpec
from himl_tasks.run_plan import RunPlan
from himl_tasks.snapshot import Snapshot, select_snapshot


def plan_run(
    backend: Backend,
    spec: JobSpec,
    *,
    check_spec: Callable[[JobSpec], None] = lambda spec: None,
    find_datastore: Callable[[str], object] | None = None,
    check_snapshot: Callable[[JobSpec, Snapshot], None] = lambda spec, snapshot: None,
) -> RunPlan:
    """Prepares a job for `backend`: everything after this reads the plan, nothing resolves again.

    Args:
        backend: Where the job will run.
        spec: The job.
        check_spec: The backend's own checks of the spec that need no side effect (e.g. that
            it can send its secret references); run before anything else.
        find_datastore: Finds a datastore by name, raising if there is none, to check the
            outputs' datastores (default: `backend.datastore`; a backend whose outputs need
            less than a usable `Datastore` passes its own).
        check_snapshot: The backend's checks of the job against its selected snapshot (e.g.
            that the entry script is in it); run before any input is resolved.

    Raises:
        InvalidInputError: The spec or its snapshot cannot run on this backend.
        SnapshotTooLargeError: The snapshot is over AzureML's limits.
        ComputeNotFoundError: The compute cluster does not exist.
        DatastoreNotFoundError: An output (or input) names an unknown datastore.
        DatasetNotFoundError: An input dataset or version does not exist.
    """
    check_spec(spec)
    backend.check_compute(spec.compute)
    for config in spec.outputs:
        (find_datastore or backend.datastore)(config.datastore)
    experiment = spec.experiment_name()
    snapshot = select_snapshot(spec.root, spec.ignored_folders)
    check_snapshot(spec, snapshot)
    # Last: resolving an input that exists only as a folder registers its version 1.
    inputs = tuple(backend.resolve_dataset(config) for config in spec.inputs)
    return RunPlan(spec=spec, experiment=experiment, snapshot=snapshot, inputs=inputs)
