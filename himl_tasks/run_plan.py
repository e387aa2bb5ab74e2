"""A job prepared by a backend, once: what everything after preparation reads.

A `JobSpec` says what to run. Preparing it on a backend chooses the snapshot's files and
resolves each input dataset to the version the job will read. The job's identity, its
submission and a local run's launch plan all read this one prepared form, so a dataset is
resolved once per submission and the snapshot selected once.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from himl_tasks.datasets import ResolvedDataset
from himl_tasks.errors import InvalidInputError
from himl_tasks.job_spec import JobSpec
from himl_tasks.snapshot import Snapshot


@dataclass(frozen=True)
class RunPlan:
    """A job spec prepared for one backend.

    Attributes:
        spec: The job.
        experiment: The experiment's name, sanitised (read from the environment once).
        snapshot: The files that travel with the job.
        inputs: The version of each input dataset the job reads, in the spec's order.
        workspace: The workspace that prepared it (its backend's key): the input versions
            and the checks are that workspace's, so another one refuses the plan ("" for a
            plan made by hand, which any backend takes).
    """

    spec: JobSpec
    experiment: str
    snapshot: Snapshot
    inputs: tuple[ResolvedDataset, ...]
    workspace: str = ""

    def __post_init__(self) -> None:
        wanted = [config.name for config in self.spec.input_datasets]
        resolved = [dataset.name for dataset in self.inputs]
        if wanted != resolved:
            raise InvalidInputError(
                f"a RunPlan's resolved inputs {resolved} do not match its spec's input datasets "
                f"{wanted}: plan the changed spec again (backend.plan(spec))"
            )

    def resuming_from(self, recovery_id: str) -> RunPlan:
        """The same plan, its job resuming from that run's recovery checkpoint.

        The snapshot and the input versions stay those of this plan: a resubmission reads
        what the first submission read.
        """
        return dataclasses.replace(
            self, spec=dataclasses.replace(self.spec, resume_from=recovery_id)
        )
