"""Hyperparameter sweeps, backend-neutral: a parameter space, how to sample it, what to optimise.

```python
from himl_tasks.sweeps import Choice, LogUniform, SweepSpec

sweep = SweepSpec(
    parameters={"learning_rate": LogUniform(1e-4, 1e-1), "batch_size": Choice(32, 64)},
    sampling="random",
    primary_metric="val_loss",
    goal="minimize",
    max_total_runs=12,
    max_concurrent_runs=4,
)
```

Each trial runs the job's script with `--<parameter> <value>` appended to its arguments.
"""

from __future__ import annotations

import itertools
import math
import numbers
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from himl_tasks.errors import InvalidInputError

SAMPLINGS = ("grid", "random", "bayesian")
GOALS = ("maximize", "minimize")
CROSS_VALIDATION_ARGUMENT = "crossval_index"


@dataclass(frozen=True, init=False)
class Choice:
    """One of the given values (the only kind grid sampling takes).

    The values are given one by one, `Choice(0.1, 0.01)`, or as one list or range,
    `Choice([0.1, 0.01])`, as AzureML's `choice` takes them (and hi-ml's examples write).

    Raises:
        InvalidInputError: For no value, or a value that is not a number or text.
    """

    values: tuple[float | int | str, ...]

    def __init__(self, *values: float | int | str | Sequence[float | int | str]) -> None:
        if len(values) == 1 and isinstance(values[0], list | tuple | range):
            values = tuple(values[0])
        if not values:
            raise InvalidInputError("Choice needs at least one value")
        wrong = [v for v in values if not isinstance(v, int | float | str)]
        if wrong:
            raise InvalidInputError(
                f"Choice takes numbers or text, one by one or as one list, not {wrong[0]!r}: "
                "write e.g. Choice(0.1, 0.01) or Choice([0.1, 0.01])"
            )
        object.__setattr__(self, "values", tuple(values))


@dataclass(frozen=True)
class Uniform:
    """A real number drawn uniformly between `low` and `high`."""

    low: float
    high: float

    def __post_init__(self) -> None:
        _check_bounds("Uniform", self.low, self.high)
        if not self.low < self.high:
            raise InvalidInputError(f"Uniform needs low < high, not {self.low}, {self.high}")


@dataclass(frozen=True)
class LogUniform:
    """A positive real number whose logarithm is uniform between log(low) and log(high)."""

    low: float
    high: float

    def __post_init__(self) -> None:
        _check_bounds("LogUniform", self.low, self.high)
        if not 0 < self.low < self.high:
            raise InvalidInputError(f"LogUniform needs 0 < low < high, not {self.low}, {self.high}")

    @property
    def log_bounds(self) -> tuple[float, float]:
        """The natural logarithms of the bounds."""
        return math.log(self.low), math.log(self.high)


def _check_bounds(kind: str, low: object, high: object) -> None:
    """Raises unless both bounds are real numbers (numpy's too; a bool is not one)."""
    for bound in (low, high):
        if isinstance(bound, bool) or not isinstance(bound, numbers.Real):
            raise InvalidInputError(f"{kind} needs numbers as bounds, not {low!r}, {high!r}")


Parameter = Choice | Uniform | LogUniform


@dataclass(frozen=True)
class BanditPolicy:
    """Stops trials whose metric falls more than a slack behind the best trial's."""

    slack_factor: float | None = None
    slack_amount: float | None = None
    evaluation_interval: int = 1
    delay_evaluation: int = 0

    def __post_init__(self) -> None:
        if (self.slack_factor is None) == (self.slack_amount is None):
            raise InvalidInputError("BanditPolicy needs exactly one of slack_factor, slack_amount")


@dataclass(frozen=True)
class MedianStoppingPolicy:
    """Stops trials whose running average falls behind the median of all trials."""

    evaluation_interval: int = 1
    delay_evaluation: int = 0


@dataclass(frozen=True)
class TruncationSelectionPolicy:
    """Stops the worst `truncation_percentage` percent of trials at each evaluation."""

    truncation_percentage: int
    evaluation_interval: int = 1
    delay_evaluation: int = 0

    def __post_init__(self) -> None:
        if not 1 <= self.truncation_percentage <= 99:
            raise InvalidInputError("truncation_percentage must be between 1 and 99")


EarlyTermination = BanditPolicy | MedianStoppingPolicy | TruncationSelectionPolicy


@dataclass(frozen=True)
class SweepSpec:
    """A hyperparameter sweep around a job.

    Args:
        parameters: The space: a parameter per script argument (with or without the leading
            `--`).
        sampling: "grid" (every combination of `Choice`s), "random" or "bayesian".
        primary_metric: The metric trials are compared by, as the job logs it.
        goal: "maximize" or "minimize".
        max_total_runs: Trials in all (default for grid: every combination).
        max_concurrent_runs: Trials running at once.
        early_termination: A policy that stops poor trials early (not with bayesian).

    Raises:
        InvalidInputError: For an empty space, an unknown sampling or goal, grid sampling over
            anything but choices, early termination with bayesian sampling, or run counts
            below 1.
    """

    parameters: Mapping[str, Parameter]
    primary_metric: str
    goal: str = "minimize"
    sampling: str = "random"
    max_total_runs: int | None = None
    max_concurrent_runs: int = 4
    early_termination: EarlyTermination | None = None

    def __post_init__(self) -> None:
        if not self.parameters:
            raise InvalidInputError("a sweep needs at least one parameter")
        if self.sampling not in SAMPLINGS:
            raise InvalidInputError(f"sampling must be one of {', '.join(SAMPLINGS)}")
        if self.goal not in GOALS:
            raise InvalidInputError(f"goal must be one of {', '.join(GOALS)}")
        if not self.primary_metric:
            raise InvalidInputError("a sweep needs a primary_metric to compare trials by")
        if self.sampling == "grid":
            continuous = [n for n, p in self.parameters.items() if not isinstance(p, Choice)]
            if continuous:
                raise InvalidInputError(
                    f"grid sampling takes Choice parameters only; {', '.join(continuous)} "
                    "are continuous: use random or bayesian sampling"
                )
        if self.sampling == "bayesian" and self.early_termination is not None:
            raise InvalidInputError("bayesian sampling does not support early termination")
        for count in (self.max_total_runs, self.max_concurrent_runs):
            if count is not None and (
                isinstance(count, bool) or not isinstance(count, numbers.Integral)
            ):
                raise InvalidInputError(
                    f"max_total_runs and max_concurrent_runs are whole numbers, not {count!r}"
                )
        total = self.max_total_runs if self.max_total_runs is not None else self.grid_size
        if total is None:
            raise InvalidInputError(f"{self.sampling} sampling needs max_total_runs")
        if total < 1 or self.max_concurrent_runs < 1:
            raise InvalidInputError("max_total_runs and max_concurrent_runs must be 1 or more")
        object.__setattr__(self, "max_total_runs", total)

    @property
    def arguments(self) -> dict[str, Parameter]:
        """The parameters under the script arguments they set (`--name`)."""
        return {"--" + name.lstrip("-"): p for name, p in self.parameters.items()}

    @property
    def grid_size(self) -> int | None:
        """The number of combinations, for grid sampling; None otherwise."""
        if self.sampling != "grid":
            return None
        sizes = [len(p.values) for p in self.parameters.values() if isinstance(p, Choice)]
        return math.prod(sizes)

    @property
    def total_runs(self) -> int:
        """Trials in all."""
        assert self.max_total_runs is not None
        return self.max_total_runs


def cross_validation(
    num_folds: int,
    *,
    primary_metric: str,
    goal: str = "minimize",
    max_concurrent_runs: int | None = None,
    argument: str = CROSS_VALIDATION_ARGUMENT,
) -> SweepSpec:
    """hi-ml's cross-validation sweep: one trial per fold, `--crossval_index 0..num_folds-1`.

    Raises:
        InvalidInputError: If `num_folds` is below 2.
    """
    if num_folds < 2:
        raise InvalidInputError(f"cross-validation needs 2 or more folds, not {num_folds}")
    return SweepSpec(
        parameters={argument: Choice(*range(num_folds))},
        sampling="grid",
        primary_metric=primary_metric,
        goal=goal,
        max_total_runs=num_folds,
        max_concurrent_runs=max_concurrent_runs or num_folds,
    )


def sample_trials(sweep: SweepSpec, *, seed: int = 0) -> list[dict[str, float | int | str]]:
    """The argument values of each trial, as `{"--name": value}`.

    Grid sampling gives the combinations in order (at most `max_total_runs` of them); random
    sampling gives `max_total_runs` draws, the same ones for the same `seed`.

    Raises:
        InvalidInputError: For bayesian sampling, which needs the results of earlier trials
            (HyperDrive on AzureML does it).
    """
    arguments = sweep.arguments
    if sweep.sampling == "grid":
        names = list(arguments)
        choices = [arguments[n].values for n in names]  # type: ignore[union-attr]
        combos = itertools.islice(itertools.product(*choices), sweep.total_runs)
        return [dict(zip(names, combo, strict=True)) for combo in combos]
    if sweep.sampling == "bayesian":
        raise InvalidInputError(
            "bayesian sampling needs a service that learns from finished trials; the local "
            "backend samples grid and random only"
        )
    rng = random.Random(seed)
    return [
        {name: _draw(parameter, rng) for name, parameter in arguments.items()}
        for _ in range(sweep.total_runs)
    ]


def _draw(parameter: Parameter, rng: random.Random) -> float | int | str:
    if isinstance(parameter, Choice):
        return rng.choice(parameter.values)
    if isinstance(parameter, Uniform):
        return rng.uniform(parameter.low, parameter.high)
    low, high = parameter.log_bounds
    return math.exp(rng.uniform(low, high))
