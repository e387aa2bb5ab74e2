"""The launch plan: what a local run's supervisor needs to start the job, typed and versioned.

`LocalBackend.submit` writes it, from the run plan, into the registry with the run; the
run's supervisor (another process, perhaps started much later by another submitter) reads it
back. It crosses that process boundary as JSON with a version, so a plan written by another
version of himl-tasks is refused with a clear error rather than misread. It holds the names
of the environment variables the job's secret references read, never their values.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from himl_tasks.backends.local.clusters import Preemption
from himl_tasks.backends.local.plan_files import read_versioned_plan
from himl_tasks.job_spec import Priority

LAUNCH_PLAN_VERSION = 1


@dataclass(frozen=True)
class LaunchInput:
    """An input dataset, resolved at submission to the version the job reads.

    Attributes:
        name: The dataset's name.
        version: The version the job reads.
        datastore: The datastore holding its files.
        path: The folder of its files in that datastore.
        use_mounting: Read the files in place (folder datastores) instead of a downloaded copy.
        target_folder: Where the job finds the files, instead of a folder of the run.
    """

    name: str
    version: int
    datastore: str
    path: str
    use_mounting: bool = False
    target_folder: Path | None = None


@dataclass(frozen=True)
class LaunchOutput:
    """An output dataset: published as the dataset's next version when the run completes.

    Attributes:
        name: The dataset's name.
        datastore: The datastore its files are uploaded to.
    """

    name: str
    datastore: str


@dataclass(frozen=True)
class LaunchPlan:
    """Everything the supervisor of a local run reads to start and watch its job.

    Attributes:
        command: The job's command line (interpreter, script or `-m module`, arguments).
        environment_variables: The job's own variables (plain values only).
        secret_variables: For each job variable that is a secret reference, the name of the
            variable in the submitter's environment it is read from at launch.
        extra_python_path: Folders added to the job's `PYTHONPATH` after its snapshot.
        num_nodes: Nodes of a distributed job (processes on this machine).
        processes_per_node: Processes per node.
        priority: Dedicated or low-priority (only the latter is preempted).
        max_run_seconds: The run fails with failure kind `timeout` after this long (None: no
            limit).
        preemption: The cluster's preemption at submission (None: none).
        inputs: The input datasets, in the job's order (`INPUT_<i>`).
        outputs: The output datasets, in the job's order (`OUTPUT_<i>`).
        resume_from: The recovery id of the run whose checkpoint the job starts from ("").
        version: The plan's format; `from_json` refuses any other.
    """

    command: tuple[str, ...]
    environment_variables: Mapping[str, str] = field(default_factory=dict)
    secret_variables: Mapping[str, str] = field(default_factory=dict)
    extra_python_path: tuple[str, ...] = ()
    num_nodes: int = 1
    processes_per_node: int = 1
    priority: Priority = Priority.DEDICATED
    max_run_seconds: float | None = None
    preemption: Preemption | None = None
    inputs: tuple[LaunchInput, ...] = ()
    outputs: tuple[LaunchOutput, ...] = ()
    resume_from: str = ""
    version: int = LAUNCH_PLAN_VERSION

    def preemption_for(self, attempt: int) -> Preemption | None:
        """The preemption that applies to this attempt of the run (before any count limit)."""
        if self.priority is not Priority.LOW_PRIORITY or self.preemption is None:
            return None
        return self.preemption if attempt in self.preemption.on_attempts else None

    def to_json(self) -> str:
        """The plan as JSON text; `LaunchPlan.from_json` makes an equal plan of it."""
        return json.dumps(dataclasses.asdict(self), default=str)

    @classmethod
    def from_json(cls, text: str) -> LaunchPlan:
        """The plan `to_json` wrote.

        Raises:
            ConfigurationError: The plan was written by a version of himl-tasks that writes
                another format (or is not a launch plan at all).
        """
        return read_versioned_plan(
            text,
            what="a local run's launch plan",
            version=LAUNCH_PLAN_VERSION,
            remedy="submit it again",
            build=cls._of_fields,
        )

    @classmethod
    def _of_fields(cls, fields: dict[str, Any]) -> LaunchPlan:
        preemption = fields["preemption"]
        return cls(
            command=tuple(fields["command"]),
            environment_variables=dict(fields["environment_variables"]),
            secret_variables=dict(fields["secret_variables"]),
            extra_python_path=tuple(fields["extra_python_path"]),
            num_nodes=int(fields["num_nodes"]),
            processes_per_node=int(fields["processes_per_node"]),
            priority=Priority(fields["priority"]),
            max_run_seconds=fields["max_run_seconds"],
            preemption=Preemption(**preemption) if preemption is not None else None,
            inputs=tuple(
                LaunchInput(
                    name=item["name"],
                    version=int(item["version"]),
                    datastore=item["datastore"],
                    path=item["path"],
                    use_mounting=bool(item["use_mounting"]),
                    target_folder=Path(item["target_folder"]) if item["target_folder"] else None,
                )
                for item in fields["inputs"]
            ),
            outputs=tuple(LaunchOutput(**item) for item in fields["outputs"]),
            resume_from=fields["resume_from"],
        )
