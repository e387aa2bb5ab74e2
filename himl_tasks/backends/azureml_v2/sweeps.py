"""A `SweepSpec` as an AzureML SDK v2 sweep job (`azure.ai.space.SweepJob`), built offline.

Each parameter becomes an entry of the sweep's search space, and the trial's command gets
`--<argument> ${{search_space.<key>}}` appended for it: AzureML substitutes each trial's
sampled value there, so every trial runs the job's script with `--<argument> <value>`
appended to its arguments, as HyperDrive does on v1 (`azureml_v1/hyperdrive.py`) and the
local backend does (`himl_tasks.sweeps.sample_trials`). A search-space key is the argument
without its dashes, with every character AzureML does not take in a key made `_`
(`--model.learning-rate` → `model_learning_rate`), as hi-ml does for its v2 sweeps.

What a `SweepSpec` allows and a v2 sweep cannot express is refused by `check_sweep_v2`,
before anything is built or sent, with one `InvalidInputError` that names every problem.
The sources of each rule (azure-ai-ml 1.35.2 under `azure/ai/ml/`, and the Azure ML docs,
MicrosoftDocs/azure-ai-docs `articles/machine-learning/`):

- Keys: letters, digits and `_`, not starting with a digit
  (`entities/_job/_input_output_helpers.py:224`, checked by `SweepJob._to_rest_object`);
  two names equal but for case are refused, as for a component's inputs
  (`entities/_component/component.py:324-333`).
- Bayesian sampling takes `choice`, `uniform` and `quniform` only ("Bayesian sampling
  supports `choice`, `uniform`, and `quniform` distributions", how-to-tune-hyperparameters.md;
  the v1 SDK of the same hyperparameter service checks it: azureml-train-core 1.62,
  azureml/train/hyperdrive/sampling.py:349) and no early-termination policy ("Bayesian
  sampling does not support early termination policies", ibid.:313; MicrosoftDocs/azure-docs
  `articles/machine-learning/v1/how-to-tune-hyperparameters-v1.md`). The v2 SDK checks
  neither and the v2 page no longer states the second, so it rests on the v1 sources.
  `SweepSpec` refuses the policy itself; it is checked again here for a spec changed after
  it was made.
- `max_total_trials` and `max_concurrent_trials` between 1 and 1000
  (how-to-tune-hyperparameters.md, "Set limits for your sweep job").
- `LogUniform(min_value, max_value)` takes the bounds of the logarithm: the range is
  `exp(min_value)`..`exp(max_value)` (reference-yaml-job-sweep.md, "Loguniform";
  `entities/_job/sweep/search_space.py:306`), so `LogUniform(low, high)` is sent as
  `log(low)`, `log(high)`, as v1 does.
- The REST payload is JSON: no NaN or infinite bounds or values.
- A trial's value is substituted into the command text, which a shell runs: a text value
  must need no shell quoting (no spaces, quotes, `$`, `;` ...), and is never empty; so must
  the argument's name.
- `BanditPolicy`: the SDK sends both `slack_factor` and `slack_amount`, the one not given as
  0 (`entities/_job/sweep/early_termination_policy.py:81-100`); "one of `slack_factor` or
  `slack_amount` is required" (reference-yaml-job-sweep.md, "BanditPolicy"), so a slack of
  0 could not be told from no slack: it must be above 0. Intervals are never negative.
"""

from __future__ import annotations

import copy
import math
import re
import shlex
from typing import Any

from himl_tasks.errors import InvalidInputError
from himl_tasks.sweeps import (
    BanditPolicy,
    Choice,
    EarlyTermination,
    LogUniform,
    MedianStoppingPolicy,
    Parameter,
    SweepSpec,
    Uniform,
)

MAX_TRIALS = 1000
"""The most `max_total_trials` and `max_concurrent_trials` AzureML takes."""

BAYESIAN_PARAMETERS = (Choice, Uniform)
"""The kinds of `SweepSpec` parameters bayesian sampling takes (of choice, uniform, quniform)."""

_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_NOT_IN_KEY = re.compile(r"[^A-Za-z0-9_]")


def search_space_keys(sweep: SweepSpec) -> dict[str, str]:
    """The search-space key of each argument the sweep sets (`{"--lr": "lr"}`).

    The key is the argument without its leading dashes, every character other than a
    letter, digit or `_` made `_`, and `_` put before a leading digit.
    """
    keys = {}
    for argument in sweep.arguments:
        key = _NOT_IN_KEY.sub("_", argument.lstrip("-"))
        keys[argument] = f"_{key}" if key[:1].isdigit() else key
    return keys


def check_sweep_v2(sweep: SweepSpec) -> None:
    """Raises unless an AzureML v2 sweep job can run the sweep as it is written.

    Checks only: it imports nothing and changes nothing, so a backend calls it before any
    side effect.

    Raises:
        InvalidInputError: Naming every part of the sweep a v2 sweep job cannot express.
    """
    problems = [
        *_name_problems(sweep),
        *_sampling_problems(sweep),
        *_limit_problems(sweep),
        *(
            problem
            for argument, parameter in sweep.arguments.items()
            for problem in _value_problems(argument, parameter)
        ),
        *_policy_problems(sweep.early_termination),
    ]
    if problems:
        raise InvalidInputError(
            "this sweep cannot run as an AzureML SDK v2 sweep job: " + "; ".join(problems)
        )


def sweep_job(command_job: Any, sweep: SweepSpec, *, timeout_seconds: int | None = None) -> Any:
    """The v2 `SweepJob` that runs `command_job` once per sampled set of arguments.

    The sweep job takes the command job's name, display name, description, experiment,
    tags, properties, compute, inputs, outputs, identity, queue settings (a Spot tier stays
    a Spot tier) and resources; its trial is a copy of the command job with the sweep's
    arguments appended to its command. The command job's own timeout (its `limits.timeout`,
    the job's `max_run_duration`) becomes each trial's timeout, as a v1 run configuration's
    `max_run_duration_seconds` applies to each HyperDrive child run. Nothing is sent.

    Args:
        command_job: An `azure.ai.ml.entities.CommandJob`, or the `Command` that
            `azure.ai.ml.command(...)` returns (its job is taken).
        sweep: The sweep.
        timeout_seconds: The most the whole sweep may run, in seconds (AzureML then cancels
            it and its trials); None leaves AzureML's default.

    Raises:
        InvalidInputError: For a sweep v2 cannot express (see `check_sweep_v2`), a command
            job that is not one, or a timeout below 1 second.
    """
    from himl_tasks.backends.azureml_v2 import sdk

    check_sweep_v2(sweep)
    if timeout_seconds is not None and timeout_seconds < 1:
        raise InvalidInputError(f"timeout_seconds must be 1 or more, not {timeout_seconds}")
    with sdk.quiet():  # the SDK builds its schemas, and warns, on first use
        job = _as_command_job(command_job, sdk.entities())
        return _sweep_job(job, sweep, timeout_seconds, sdk.sweep())


def _sweep_job(job: Any, sweep: SweepSpec, timeout_seconds: int | None, space: Any) -> Any:
    keys = search_space_keys(sweep)
    trial = copy.deepcopy(job)
    trial.command = " ".join(
        [
            (job.command or "").rstrip(),
            *(f"{argument} ${{{{search_space.{key}}}}}" for argument, key in keys.items()),
        ]
    )
    return space.SweepJob(
        name=job.name,
        display_name=job.display_name,
        description=job.description,
        experiment_name=job.experiment_name,
        tags=dict(job.tags or {}),
        properties=dict(job.properties or {}),
        compute=job.compute,
        inputs=job.inputs,
        outputs=job.outputs,
        identity=job.identity,
        queue_settings=job.queue_settings,
        resources=copy.deepcopy(job.resources),
        trial=trial,
        search_space={
            keys[argument]: _distribution(parameter, space)
            for argument, parameter in sweep.arguments.items()
        },
        sampling_algorithm=_sampling(sweep.sampling, space),
        objective=space.Objective(goal=sweep.goal, primary_metric=sweep.primary_metric),
        early_termination=_policy(sweep.early_termination, space),
        limits=space.SweepJobLimits(
            max_total_trials=sweep.total_runs,
            max_concurrent_trials=sweep.max_concurrent_runs,
            timeout=timeout_seconds,
            trial_timeout=_trial_timeout(job),
        ),
    )


def _as_command_job(command_job: Any, entities: Any) -> Any:
    if isinstance(command_job, entities.Command):
        command_job = command_job._to_job()  # the job create_or_update would submit
    if not isinstance(command_job, entities.CommandJob):
        raise InvalidInputError(
            "a v2 sweep runs a command job: give an azure.ai.ml.entities.CommandJob or the "
            f"Command that azure.ai.ml.command(...) returns, not {type(command_job).__name__}"
        )
    return command_job


def _trial_timeout(job: Any) -> int | None:
    timeout = job.limits.timeout if job.limits is not None else None
    return int(timeout) if isinstance(timeout, int | float) else None


def _distribution(parameter: Parameter, space: Any) -> Any:
    if isinstance(parameter, Choice):
        return space.Choice(values=list(parameter.values))
    if isinstance(parameter, Uniform):
        return space.Uniform(min_value=parameter.low, max_value=parameter.high)
    assert isinstance(parameter, LogUniform)
    low, high = parameter.log_bounds  # v2 takes the exponents' bounds, as v1 does
    return space.LogUniform(min_value=low, max_value=high)


def _sampling(sampling: str, space: Any) -> Any:
    algorithm = {
        "grid": space.GridSamplingAlgorithm,
        "random": space.RandomSamplingAlgorithm,
        "bayesian": space.BayesianSamplingAlgorithm,
    }[sampling]
    return algorithm()


def _policy(policy: EarlyTermination | None, space: Any) -> Any:
    if policy is None:
        return None
    timing = {
        "evaluation_interval": policy.evaluation_interval,
        "delay_evaluation": policy.delay_evaluation,
    }
    if isinstance(policy, BanditPolicy):
        slack: dict[str, float | None] = (
            {"slack_factor": policy.slack_factor}
            if policy.slack_factor is not None
            else {"slack_amount": policy.slack_amount}
        )
        return space.BanditPolicy(**slack, **timing)
    if isinstance(policy, MedianStoppingPolicy):
        return space.MedianStoppingPolicy(**timing)
    return space.TruncationSelectionPolicy(
        truncation_percentage=policy.truncation_percentage, **timing
    )


# ---- the checks ---------------------------------------------------------------------------


def _name_problems(sweep: SweepSpec) -> list[str]:
    problems = []
    by_argument: dict[str, list[str]] = {}
    for name in sweep.parameters:
        by_argument.setdefault("--" + name.lstrip("-"), []).append(name)
    for argument, names in by_argument.items():
        if len(names) > 1:
            problems.append(
                f"parameters {', '.join(map(repr, names))} all set the argument {argument}: "
                "keep one"
            )
    by_key: dict[str, list[str]] = {}
    for argument, key in search_space_keys(sweep).items():
        if not _KEY.match(key):
            problems.append(f"the parameter {argument!r} names no argument: give it a name")
        elif shlex.quote(argument) != argument:
            problems.append(
                f"the argument {argument!r} goes into the trial's command as it is, for a "
                "shell to split or expand: name it without spaces, quotes or shell characters"
            )
        by_key.setdefault(key.lower(), []).append(argument)
    for arguments in by_key.values():
        if len(arguments) > 1:
            problems.append(
                f"the arguments {', '.join(arguments)} would share one search-space key "
                "(AzureML takes letters, digits and _ in a key, and compares keys ignoring "
                "case): rename one"
            )
    return problems


def _sampling_problems(sweep: SweepSpec) -> list[str]:
    if sweep.sampling != "bayesian":
        return []
    problems = [
        f"bayesian sampling takes choice and uniform parameters only, and {argument} is "
        f"{type(parameter).__name__}: use random sampling, or a Choice or Uniform"
        for argument, parameter in sweep.arguments.items()
        if not isinstance(parameter, BAYESIAN_PARAMETERS)
    ]
    if sweep.early_termination is not None:
        problems.append(
            "bayesian sampling takes no early termination policy: leave early_termination "
            "out, or use random or grid sampling"
        )
    return problems


def _limit_problems(sweep: SweepSpec) -> list[str]:
    return [
        f"{name} is {value}, and AzureML runs at most {MAX_TRIALS}"
        for name, value in (
            ("max_total_runs", sweep.total_runs),
            ("max_concurrent_runs", sweep.max_concurrent_runs),
        )
        if value > MAX_TRIALS
    ]


def _value_problems(argument: str, parameter: Parameter) -> list[str]:
    if isinstance(parameter, Choice):
        values: tuple[Any, ...] = parameter.values
    else:
        values = (parameter.low, parameter.high)
    problems = []
    for value in values:
        if isinstance(value, bool):
            problems.append(
                f"{argument} has the value {value}, which AzureML sends as JSON true/false: "
                f"write it as text, '{value}'"
            )
        elif isinstance(value, float) and not math.isfinite(value):
            problems.append(
                f"{argument} has the value {value}, which AzureML's JSON payload cannot "
                "carry: use finite numbers"
            )
        elif isinstance(value, str) and shlex.quote(value) != value:
            problems.append(
                f"{argument} has the text value {value!r}, which AzureML puts into the "
                "trial's command as it is, for a shell to split or expand: use values "
                "without spaces, quotes or shell characters"
            )
    return problems


def _policy_problems(policy: EarlyTermination | None) -> list[str]:
    if policy is None:
        return []
    name = type(policy).__name__
    problems = [
        f"{name}.{field} is {value}; it cannot be negative"
        for field, value in (
            ("evaluation_interval", policy.evaluation_interval),
            ("delay_evaluation", policy.delay_evaluation),
        )
        if value < 0
    ]
    if isinstance(policy, BanditPolicy):
        slack_name, slack = (
            ("slack_factor", policy.slack_factor)
            if policy.slack_factor is not None
            else ("slack_amount", policy.slack_amount)
        )
        if slack is not None and not (math.isfinite(slack) and slack > 0):
            problems.append(
                f"BanditPolicy.{slack_name} is {slack}; AzureML sends an unset slack as 0, "
                "so it must be a finite number above 0"
            )
    return problems
