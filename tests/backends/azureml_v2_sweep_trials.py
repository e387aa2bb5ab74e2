"""What the AzureML service (SDK v2) does with a sweep job's trials, for the v2 stand-in.

A sweep job (`azure.ai.ml.sweep.SweepJob`) names a search space, a sampling algorithm and
limits; the service samples values, and starts each trial as a child job: the trial's command
with every `${{search_space.<key>}}` replaced by the trial's value ("Hyperparameters can be
referenced in the `trial.command` with the `${{ search_space.<hyperparameter> }}` expression",
reference-yaml-job-sweep.md), the values also in the trial's environment as
`AZUREML_SWEEP_<key>` (the `SweepJob` docstring, azure/ai/ml/entities/_job/sweep/sweep_job.py,
added by Azure/azure-sdk-for-python PR 36564). Child jobs are named `<sweep job name>_<n>`
(v1's HyperDrive children were `HD_<id>_<n>`; this naming is the stand-in's, not checked
against a live workspace), listed under the sweep job by `jobs.list(parent_job_name=...)`
(Azure/azure-sdk-for-python issue 26922), at most `max_concurrent_trials` running at once,
`max_total_trials` in all.

The search space is read in the form the service receives it (each distribution's
`_to_rest_object()`, `[kind, [arguments]]`: azure/ai/ml/entities/_job/sweep/search_space.py).
Grid sampling takes every combination of the choices in order (the first key slowest); random
sampling draws with `random.Random(seed)` (the algorithm's `seed`, else 0); bayesian sampling,
which learns from finished trials on the service, is drawn like random here (as the v1
stand-in does for HyperDrive, tests/backends/azureml_execution.py, `sampled_arguments`).
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import math
import random
import re
from pathlib import Path
from typing import Any

from tests.backends.azureml_v2_service import ENDED, FakeAzureMLV2Service, FakeJob, Outcome

_REFERENCE = re.compile(r"\$\{\{\s*search_space\.([A-Za-z0-9_]+)\s*\}\}")


def sampled_trials(sweep_job: Any) -> list[dict[str, Any]]:
    """The values of each trial the service would start, `{key: value}`, in order."""
    space = {key: dist._to_rest_object() for key, dist in (sweep_job.search_space or {}).items()}
    limits = sweep_job.limits
    limit = int(limits.max_total_trials) if limits and limits.max_total_trials else 1000
    keys = list(space)
    algorithm = sweep_job.sampling_algorithm
    kind = str(getattr(algorithm, "type", algorithm)).lower()
    if kind == "grid":
        choices = [space[key][1][0] for key in keys]  # grid sampling takes choices only
        combos = itertools.islice(itertools.product(*choices), limit)
        return [dict(zip(keys, combo, strict=True)) for combo in combos]
    rng = random.Random(getattr(algorithm, "seed", None) or 0)
    return [{key: _draw(space[key], rng) for key in keys} for _ in range(limit)]


def max_concurrent_trials(sweep_job: Any, total: int) -> int:
    """Trials running at once: `max_concurrent_trials`, else all of them (the service's default)."""
    limits = sweep_job.limits
    given = limits.max_concurrent_trials if limits is not None else None
    return int(given) if given else max(total, 1)


def trial_job(sweep_job: Any, index: int, values: dict[str, Any]) -> Any:
    """The child job the service starts for trial `index`: a CommandJob with the values in.

    It runs the trial's command with each `${{search_space.<key>}}` replaced, on the sweep
    job's compute, in its experiment, with its inputs and outputs, and `AZUREML_SWEEP_<key>`
    set for each value.
    """
    from himl_tasks.backends.azureml_v2 import sdk

    trial = sweep_job.trial
    with sdk.quiet():
        job = sdk.entities().CommandJob(
            name=f"{sweep_job.name}_{index}",
            display_name=f"{sweep_job.display_name or sweep_job.name}_{index}",
            experiment_name=sweep_job.experiment_name,
            tags=dict(sweep_job.tags or {}),
            command=trial_command(str(trial.command), values),
            code=trial.code,
            environment=trial.environment,
            environment_variables={
                **dict(trial.environment_variables or {}),
                **{f"AZUREML_SWEEP_{key}": rendered(value) for key, value in values.items()},
            },
            distribution=copy.deepcopy(trial.distribution),
            resources=copy.deepcopy(sweep_job.resources or trial.resources),
            compute=sweep_job.compute,
            inputs=copy.deepcopy(sweep_job.inputs),
            outputs=copy.deepcopy(sweep_job.outputs),
            identity=sweep_job.identity,
            queue_settings=copy.deepcopy(sweep_job.queue_settings),
        )
        trial_timeout = sweep_job.limits.trial_timeout if sweep_job.limits else None
        if trial_timeout:
            job.limits = sdk.entities().CommandJobLimits(timeout=int(trial_timeout))
    return job


def trial_command(command: str, values: dict[str, Any]) -> str:
    """The command with each `${{search_space.<key>}}` replaced by the trial's value.

    Raises:
        KeyError: For a reference to a key the search space does not have (the service refuses
            such a sweep job).
    """
    return _REFERENCE.sub(lambda found: rendered(values[found.group(1)]), command)


def rendered(value: Any) -> str:
    """A sampled value as it appears in the command (the JSON number or the text)."""
    return value if isinstance(value, str) else repr(value)


def _draw(expression: list[Any], rng: random.Random) -> Any:
    kind, args = expression
    if kind == "choice":
        return rng.choice(args[0])
    if kind == "randint":
        return rng.randrange(args[0])
    if kind == "uniform":
        return rng.uniform(args[0], args[1])
    if kind == "loguniform":  # the bounds are exponents (reference-yaml-job-sweep.md)
        return math.exp(rng.uniform(args[0], args[1]))
    if kind == "quniform":
        return round(rng.uniform(args[0], args[1]) / args[2]) * args[2]
    if kind == "normal":
        return rng.gauss(args[0], args[1])
    if kind == "lognormal":
        return math.exp(rng.gauss(args[0], args[1]))
    raise NotImplementedError(f"the stand-in does not sample '{kind}'")


def is_sweep_job(job: Any) -> bool:
    """True for a sweep job as the service receives it (`SweepJob`, type "sweep")."""
    return str(getattr(job, "type", "")) == "sweep"


class FakeSweepJob(FakeJob):
    """A sweep job on the stand-in: it runs no script of its own; it starts its trials.

    It goes through its scripted statuses up to Running, and stays Running while trials are
    to start or running; each poll of it polls its running trials once and starts the next
    ones while fewer than `max_concurrent_trials` run. When every trial has ended it goes on
    (Finalizing, Completed), as v1's stand-in ends a HyperDrive run
    (tests/backends/azureml_service.py, `_advance_sweep`). Each trial is a child job
    (`trial_job`) with the sampled values in its command; it behaves as the outcome's
    `children[n]` scripts it, else as the sweep job's own outcome does (on the executing
    stand-in it runs: `start_trial`). Canceling the sweep job cancels its running trials and
    starts no more.
    """

    def __init__(
        self,
        service: FakeAzureMLV2Service,
        entity: Any,
        outcome: Outcome,
        *,
        snapshot: list[str] | None = None,
    ) -> None:
        super().__init__(service, entity, outcome, snapshot=snapshot)
        trials = sampled_trials(entity)
        self.pending = list(enumerate(trials))
        self.max_concurrent = max_concurrent_trials(entity, len(trials))
        self.trial_outcome = dataclasses.replace(outcome, children=())
        # Where the trials' code is, when not where it was submitted from (a copy).
        self.trial_code: Path | None = None

    def poll(self) -> None:
        if self.status == "Running" and not self.canceled and self._trials_go_on():
            return
        super().poll()

    def cancel(self) -> None:
        self.pending.clear()
        super().cancel()

    def _trials_go_on(self) -> bool:
        """Polls the running trials, starts more; True while any is to start or running."""
        running = [child for child in self.children if child.status not in ENDED]
        for child in running:
            child.poll()
        running = [child for child in running if child.status not in ENDED]
        while self.pending and len(running) < self.max_concurrent:
            running.append(self._start_trial(*self.pending.pop(0)))
        return bool(running)

    def _start_trial(self, index: int, values: dict[str, Any]) -> FakeJob:
        scripted = self.outcome.children
        outcome = scripted[index] if index < len(scripted) else self.trial_outcome
        entity = trial_job(self.entity, index, values)
        if self.trial_code is not None:
            entity.code = str(self.trial_code)
        trial = FakeJob(
            self.service,
            entity,
            outcome,
            parent=self.name,
            snapshot=self.snapshot,
        )
        trial = self.service.start_trial(trial)
        self.children.append(trial)
        self.service.jobs[trial.name] = trial
        return trial
