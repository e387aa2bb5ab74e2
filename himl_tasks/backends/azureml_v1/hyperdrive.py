"""A `SweepSpec` as AzureML HyperDrive (azureml-train-core) runs it."""

from __future__ import annotations

from typing import Any

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


def hyperdrive_config(sweep: SweepSpec, run_config: Any) -> Any:
    """The `HyperDriveConfig` that runs `run_config` once per sampled set of arguments."""
    from azureml.train.hyperdrive import (
        BayesianParameterSampling,
        GridParameterSampling,
        HyperDriveConfig,
        PrimaryMetricGoal,
        RandomParameterSampling,
    )

    space = {name: _expression(parameter) for name, parameter in sweep.arguments.items()}
    sampling_class = {
        "grid": GridParameterSampling,
        "random": RandomParameterSampling,
        "bayesian": BayesianParameterSampling,
    }[sweep.sampling]
    goal = PrimaryMetricGoal.MAXIMIZE if sweep.goal == "maximize" else PrimaryMetricGoal.MINIMIZE
    return HyperDriveConfig(
        run_config=run_config,
        hyperparameter_sampling=sampling_class(space),
        policy=_policy(sweep.early_termination),
        primary_metric_name=sweep.primary_metric,
        primary_metric_goal=goal,
        max_total_runs=sweep.total_runs,
        max_concurrent_runs=sweep.max_concurrent_runs,
    )


def _expression(parameter: Parameter) -> Any:
    from azureml.train.hyperdrive import choice, loguniform, uniform

    if isinstance(parameter, Choice):
        return choice(*parameter.values)
    if isinstance(parameter, Uniform):
        return uniform(parameter.low, parameter.high)
    assert isinstance(parameter, LogUniform)
    return loguniform(*parameter.log_bounds)  # HyperDrive takes the exponents' bounds


def _policy(policy: EarlyTermination | None) -> Any:
    from azureml.train.hyperdrive import (
        BanditPolicy as AzureBandit,
    )
    from azureml.train.hyperdrive import (
        MedianStoppingPolicy as AzureMedian,
    )
    from azureml.train.hyperdrive import (
        TruncationSelectionPolicy as AzureTruncation,
    )

    if policy is None:
        return None
    timing = {
        "evaluation_interval": policy.evaluation_interval,
        "delay_evaluation": policy.delay_evaluation,
    }
    if isinstance(policy, BanditPolicy):
        return AzureBandit(
            slack_factor=policy.slack_factor, slack_amount=policy.slack_amount, **timing
        )
    if isinstance(policy, MedianStoppingPolicy):
        return AzureMedian(**timing)
    return AzureTruncation(truncation_percentage=policy.truncation_percentage, **timing)
