"""The sweep plan: what a local sweep's driver run reads (`sweep.json` in its snapshot).

`LocalBackend.submit_sweep` writes it; the driver (`sweep_driver`), the parent run's job,
reads it in another process. Like the launch plan it is typed and versioned: a plan of
another format is refused with a clear error.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

from himl_tasks.backends.local.plan_files import read_versioned_plan
from himl_tasks.job_spec import JobSpec

SWEEP_PLAN_VERSION = 1
SWEEP_PLAN_FILE = "sweep.json"
TRIAL_SNAPSHOT_FOLDER = "trial_snapshot"
"""Beside the plan: the job's snapshot as it was selected at submission, which every trial runs."""


@dataclass(frozen=True)
class SweepPlan:
    """The trials of a local sweep and how to compare them.

    Attributes:
        trial_spec: The job each trial runs, with the trial's arguments appended. Its inputs
            name the versions the sweep was planned with: every trial reads the same data.
        trials: The argument values of each trial, as `{"--name": value}`.
        primary_metric: The metric trials are compared by.
        goal: "maximize" or "minimize".
        max_concurrent_runs: Trials running at once.
        version: The plan's format; `from_json` refuses any other.
    """

    trial_spec: JobSpec
    trials: tuple[Mapping[str, float | int | str], ...]
    primary_metric: str
    goal: str
    max_concurrent_runs: int
    version: int = SWEEP_PLAN_VERSION

    def to_json(self) -> str:
        """The plan as JSON text; `SweepPlan.from_json` makes an equal plan of it."""
        return json.dumps(
            {
                "version": self.version,
                "trial_spec": json.loads(self.trial_spec.to_json()),
                "trials": [dict(values) for values in self.trials],
                "primary_metric": self.primary_metric,
                "goal": self.goal,
                "max_concurrent_runs": self.max_concurrent_runs,
            }
        )

    @classmethod
    def from_json(cls, text: str) -> SweepPlan:
        """The plan `to_json` wrote.

        Raises:
            ConfigurationError: The plan has another format (another version of himl-tasks
                wrote it), or is not a sweep plan.
        """
        return read_versioned_plan(
            text,
            what="a local sweep's plan",
            version=SWEEP_PLAN_VERSION,
            remedy="submit the sweep again",
            build=lambda fields: cls(
                trial_spec=JobSpec.from_json(json.dumps(fields["trial_spec"])),
                trials=tuple(dict(values) for values in fields["trials"]),
                primary_metric=fields["primary_metric"],
                goal=fields["goal"],
                max_concurrent_runs=int(fields["max_concurrent_runs"]),
            ),
        )
