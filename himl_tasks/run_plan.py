"""A job prepared by a backend, once: what everything after preparation reads.

A `JobSpec` says what to run. Preparing it on a backend chooses the snapshot's files and
resolves each input dataset to the version the job will read. The job's identity, its
submission and a local run's launch plan all read this one prepared form, so a dataset is
resolved once per submission and the snapshot selected once.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


def identity_fields(spec: JobSpec) -> dict[str, Any]:
    """The spec's fields that make a job what it is, for an identity digest.

    Every field but where the snapshot's folder is (its content counts, digested apart), the
    display name, and datasets' `local_folder` (it serves the script outside a job); paths
    inside the snapshot are relative to it, so the same project in another folder is the
    same job.
    """
    fields = dataclasses.asdict(spec)
    fields["snapshot_root"] = None
    fields.pop("display_name")
    for dataset in (*fields["input_datasets"], *fields["output_datasets"]):
        dataset["local_folder"] = None
    for name in ("entry_script", "conda_environment_file", "private_pip_wheel_path"):
        if fields[name] is not None:
            fields[name] = str(_relative(Path(fields[name]), spec.snapshot_root))
    return fields


def _relative(path: Path, root: Path) -> Path:
    try:
        return path.absolute().relative_to(root)
    except ValueError:
        return path
