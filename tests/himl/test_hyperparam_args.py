"""hi-ml 0.5's `hyperparam_args` (its SDK v2 sweep settings) as a SweepSpec."""

from __future__ import annotations

import math
from typing import Any

import pytest

from himl_tasks.backends.azureml_v2 import sdk
from himl_tasks.errors import InvalidInputError
from himl_tasks.himl.hyperparam_args import sweep_from_hyperparam_args
from himl_tasks.sweeps import (
    BanditPolicy,
    Choice,
    LogUniform,
    MedianStoppingPolicy,
    SweepSpec,
    TruncationSelectionPolicy,
    Uniform,
    cross_validation,
)


@pytest.fixture(scope="module")
def sweep() -> Any:
    return sdk.sweep()


def test_hi_mls_cross_validation_args_are_its_grid_over_the_fold_index(sweep: Any) -> None:
    # What health_azure's create_crossval_hyperparam_args_v2(3) returns.
    args = {
        "max_total_trials": 3,
        "parameter_sampling": {"crossval_index": sweep.Choice(["0", "1", "2"])},
        "sampling_algorithm": "grid",
        "primary_metric": "val/loss",
        "goal": "Minimize",
    }

    spec = sweep_from_hyperparam_args(args)

    assert spec == SweepSpec(
        parameters={"crossval_index": Choice("0", "1", "2")},
        sampling="grid",
        primary_metric="val/loss",
        goal="minimize",
        max_total_runs=3,
        max_concurrent_runs=3,
    )
    # The same argument as himl-tasks' own cross-validation.
    assert list(spec.arguments) == list(cross_validation(3, primary_metric="x").arguments)


def test_distributions_samplings_limits_and_policies(sweep: Any) -> None:
    args = {
        "parameter_sampling": {
            "lr": sweep.LogUniform(min_value=math.log(1e-4), max_value=math.log(1e-1)),
            "dropout": sweep.Uniform(min_value=0.1, max_value=0.5),
            "layers": sweep.Choice(values=[2, 4]),
        },
        "sampling_algorithm": sweep.RandomSamplingAlgorithm(),
        "max_total_trials": 20,
        "max_concurrent_trials": 4,
        "primary_metric": "acc",
        "goal": "Maximize",
        "early_termination_policy": sweep.BanditPolicy(slack_factor=0.1, evaluation_interval=2),
    }

    spec = sweep_from_hyperparam_args(args)

    lr = spec.parameters["lr"]
    assert isinstance(lr, LogUniform)
    assert (lr.low, lr.high) == pytest.approx((1e-4, 1e-1))
    assert spec.parameters["dropout"] == Uniform(0.1, 0.5)
    assert spec.parameters["layers"] == Choice(2, 4)
    assert (spec.sampling, spec.goal) == ("random", "maximize")
    assert (spec.total_runs, spec.max_concurrent_runs) == (20, 4)
    assert spec.early_termination == BanditPolicy(slack_factor=0.1, evaluation_interval=2)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("slack_amount", BanditPolicy(slack_amount=0.3, evaluation_interval=0)),
        ("median", MedianStoppingPolicy(evaluation_interval=1, delay_evaluation=5)),
        ("truncation", TruncationSelectionPolicy(20, evaluation_interval=0)),
    ],
)
def test_the_other_policies(sweep: Any, given: str, expected: Any) -> None:
    policy = {
        "slack_amount": lambda: sweep.BanditPolicy(slack_amount=0.3),
        "median": lambda: sweep.MedianStoppingPolicy(delay_evaluation=5),
        "truncation": lambda: sweep.TruncationSelectionPolicy(truncation_percentage=20),
    }[given]()
    args = {
        "parameter_sampling": {"lr": sweep.Uniform(min_value=0.1, max_value=0.2)},
        "max_total_trials": 2,
        "primary_metric": "m",
        "early_termination_policy": policy,
    }

    assert sweep_from_hyperparam_args(args).early_termination == expected


@pytest.mark.parametrize(
    ("args", "named"),
    [
        ({"timeout": 60}, "hyperparam_args has timeout"),
        ({"trial_timeout": 60, "compute": "c"}, "compute, trial_timeout"),
        ({"parameter_sampling": {}}, "needs 'parameter_sampling'"),
        ({"early_termination_policy": "bandit"}, "names a policy without its settings"),
    ],
)
def test_what_a_sweep_spec_cannot_carry_is_refused(
    sweep: Any, args: dict[str, Any], named: str
) -> None:
    given = {
        "parameter_sampling": {"lr": sweep.Uniform(min_value=0.1, max_value=0.2)},
        "max_total_trials": 2,
        "primary_metric": "m",
        **args,
    }

    with pytest.raises(InvalidInputError, match=named):
        sweep_from_hyperparam_args(given)


def test_a_distribution_a_sweep_spec_has_not_is_refused(sweep: Any) -> None:
    args = {
        "parameter_sampling": {"lr": sweep.Normal(mu=0.1, sigma=0.01)},
        "max_total_trials": 2,
        "primary_metric": "m",
    }

    with pytest.raises(InvalidInputError, match="'lr' is Normal; himl-tasks' sweeps take"):
        sweep_from_hyperparam_args(args)


@pytest.mark.parametrize(
    ("parameter", "more"),
    [
        pytest.param(lambda s: s.LogUniform(min_value=1, max_value=1000), {}, id="exp-overflow"),
        pytest.param(lambda s: s.Uniform(min_value="a", max_value=1), {}, id="text-bound"),
        pytest.param(lambda s: s.Uniform(min_value=None, max_value=1), {}, id="no-bound"),
        pytest.param(lambda s: s.LogUniform(min_value="0", max_value=1), {}, id="text-log-bound"),
        pytest.param(lambda s: s.Choice([1, 2]), {"max_total_trials": "5"}, id="text-trials"),
        pytest.param(
            lambda s: s.Choice([1, 2]), {"max_concurrent_trials": 2.5}, id="fractional-trials"
        ),
    ],
)
def test_settings_of_the_wrong_type_or_range_are_one_clear_error(
    sweep: Any, parameter: Any, more: dict[str, Any]
) -> None:
    # Before: OverflowError (exp(1000)) or TypeError ('<' between str and int).
    args = {
        "parameter_sampling": {"lr": parameter(sweep)},
        "max_total_trials": 4,
        "primary_metric": "loss",
        "goal": "Minimize",
        **more,
    }

    with pytest.raises(InvalidInputError):
        sweep_from_hyperparam_args(args)
