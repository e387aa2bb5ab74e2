"""hi-ml 0.5's SDK v2 sweep settings (`hyperparam_args`) as a backend-neutral `SweepSpec`.

hi-ml builds them with `create_grid_hyperparam_args_v2` / `create_crossval_hyperparam_args_v2`
(health_azure/himl.py): `{"parameter_sampling": {name: azure.ai.ml.sweep.Choice(...)},
"max_total_trials": n, "sampling_algorithm": "grid", "primary_metric": "val/loss",
"goal": "Minimize"}`; `submit_run_v2` passes each parameter to the script as
`--<name>=<value>` and every other key to `Command.sweep(...)` (`max_concurrent_trials`,
`early_termination_policy`, ...). A `SweepSpec` passes `--<name> <value>`, which argparse
reads the same way.

The distributions are read by their `type` (azure.ai.ml.sweep's `Choice`, `Uniform`,
`LogUniform`: azure/ai/ml/entities/_job/sweep/search_space.py), so this module imports no SDK.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
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
    TruncationSelectionPolicy,
    Uniform,
)

PARAMETER_SAMPLING = "parameter_sampling"
"""hi-ml's key of the parameters (health_azure/himl.py, `PARAM_SAMPLING_ARG`)."""

KNOWN_KEYS = (
    PARAMETER_SAMPLING,
    "max_total_trials",
    "max_concurrent_trials",
    "sampling_algorithm",
    "primary_metric",
    "goal",
    "early_termination_policy",
)


def sweep_from_hyperparam_args(hyperparam_args: Mapping[str, Any]) -> SweepSpec:
    """The `SweepSpec` that runs the trials hi-ml's `hyperparam_args` describe.

    Without `max_concurrent_trials`, every trial may run at once, as AzureML's default is.

    Raises:
        InvalidInputError: For a key or distribution a `SweepSpec` cannot carry (`timeout`,
            `trial_timeout`, normal or quantised distributions, ...), or settings the
            `SweepSpec` refuses.
    """
    unknown = sorted(set(hyperparam_args) - set(KNOWN_KEYS))
    if unknown:
        raise InvalidInputError(
            f"hyperparam_args has {', '.join(unknown)}, which himl-tasks' sweeps do not carry: "
            f"use only {', '.join(KNOWN_KEYS)}, or give sweep=SweepSpec(...)"
        )
    sampling = hyperparam_args.get(PARAMETER_SAMPLING)
    if not isinstance(sampling, Mapping) or not sampling:
        raise InvalidInputError(
            f"hyperparam_args needs '{PARAMETER_SAMPLING}': a dict of parameter name to "
            "azure.ai.ml.sweep Choice, Uniform or LogUniform"
        )
    total = hyperparam_args.get("max_total_trials")
    algorithm = hyperparam_args.get("sampling_algorithm", "random")
    return SweepSpec(
        parameters={name: _parameter(name, dist) for name, dist in sampling.items()},
        primary_metric=str(hyperparam_args.get("primary_metric") or ""),
        goal=str(hyperparam_args.get("goal", "minimize")).lower(),
        sampling=str(getattr(algorithm, "type", algorithm)).lower(),
        max_total_runs=total,
        max_concurrent_runs=hyperparam_args.get("max_concurrent_trials") or total or 1,
        early_termination=_policy(hyperparam_args.get("early_termination_policy")),
    )


def _parameter(name: str, distribution: Any) -> Parameter:
    kind = str(getattr(distribution, "type", "")).lower()
    if kind == "choice":
        return Choice(*list(distribution.values or []))
    if kind == "uniform":
        return Uniform(distribution.min_value, distribution.max_value)
    if kind == "loguniform":  # its bounds are the logarithms' (exp(min)..exp(max))
        try:
            low, high = math.exp(distribution.min_value), math.exp(distribution.max_value)
        except (OverflowError, TypeError):
            raise InvalidInputError(
                f"hyperparam_args' parameter {name!r}: LogUniform's min_value and max_value "
                "are the logarithms of the bounds, numbers of at most about 709, not "
                f"{distribution.min_value!r}, {distribution.max_value!r}"
            ) from None
        return LogUniform(low, high)
    raise InvalidInputError(
        f"hyperparam_args' parameter {name!r} is {type(distribution).__name__}; himl-tasks' "
        "sweeps take Choice, Uniform and LogUniform"
    )


def _policy(policy: Any) -> EarlyTermination | None:
    if policy is None:
        return None
    kind = str(getattr(policy, "type", policy)).lower()
    if isinstance(policy, str):
        raise InvalidInputError(
            f"early_termination_policy {policy!r} names a policy without its settings: give "
            "an azure.ai.ml.sweep policy object (e.g. BanditPolicy(slack_factor=0.1))"
        )
    timing = {
        "evaluation_interval": policy.evaluation_interval,
        "delay_evaluation": policy.delay_evaluation,
    }
    if kind == "bandit":
        # The SDK keeps the slack not given as 0 (early_termination_policy.py, BanditPolicy).
        if policy.slack_factor:
            return BanditPolicy(slack_factor=policy.slack_factor, **timing)
        return BanditPolicy(slack_amount=policy.slack_amount, **timing)
    if kind == "median_stopping":
        return MedianStoppingPolicy(**timing)
    if kind == "truncation_selection":
        return TruncationSelectionPolicy(policy.truncation_percentage, **timing)
    raise InvalidInputError(f"early_termination_policy {policy!r} is not a sweep policy")
