"""The settings of a local compute cluster: its limit on runs at once and its preemption."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from himl_tasks.errors import InvalidInputError
from himl_tasks.number_checks import is_seconds, is_whole_number

# The cluster a job with no `compute` runs on; it always exists.
DEFAULT_CLUSTER = "local"
# More runs at once than any machine holds; the registry stores the limit as an integer.
MAX_CONCURRENT_RUNS = 1_000_000
# The cluster a pipeline's run (its driver) runs on, without a limit. A driver only waits
# for its steps: on its steps' cluster, pipelines submitted together would hold every slot
# and wait for ever for steps that can never start. It always exists.
DRIVER_CLUSTER = "local-drivers"


class PreemptionMode(enum.StrEnum):
    """What becomes of a preempted run."""

    FAIL = "fail"
    """The run ends Failed, failure kind `preempted` (a flow resubmits it)."""
    RESTART = "restart"
    """The platform restarts the same run, keeping its `outputs/` and metrics."""


@dataclass(frozen=True)
class Preemption:
    """Makes a cluster preempt its low-priority runs, as AzureML's low-priority VMs do.

    Args:
        after_seconds: How long into an attempt its processes are killed (no warning, SIGKILL).
        on_attempts: Which attempts are preempted (1 is the first).
        mode: A `PreemptionMode` (or its value as text). "fail": the run ends Failed,
            failure kind `preempted`, with "PreemptionError" in its error. "restart": the
            platform restarts the same run after `restart_delay_seconds`, keeping its
            `outputs/` and metrics; the attempt count goes up by one.
        restart_delay_seconds: The pause before a restart.
        max_preemptions: The most attempts the cluster preempts in all (None: no limit), e.g.
            1 to lose one run and let its resubmission finish.
        after_metric: Instead of a time, a point in the job's progress: `(name, count)` kills
            the attempt as soon as it has logged `count` values of metric `name`, e.g.
            `("train_loss", 2)` right after the second epoch. Tests use it to preempt at
            every epoch boundary, which a time cannot hit reliably.
    """

    after_seconds: float | None = None
    on_attempts: tuple[int, ...] = (1,)
    mode: PreemptionMode | str = PreemptionMode.FAIL
    restart_delay_seconds: float = 1.0
    max_preemptions: int | None = None
    after_metric: tuple[str, int] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.mode, str) or self.mode not in set(PreemptionMode):
            raise InvalidInputError(
                f"preemption mode must be 'fail' or 'restart', not {self.mode!r}"
            )
        object.__setattr__(self, "mode", PreemptionMode(self.mode))
        if (self.after_seconds is None) == (self.after_metric is None):
            raise InvalidInputError(
                "a preemption needs exactly one of after_seconds and after_metric"
            )
        for name in ("after_seconds", "restart_delay_seconds"):
            value = getattr(self, name)
            if value is not None and not is_seconds(value, zero_ok=True):
                raise InvalidInputError(
                    f"{name} must be a finite number of 0 or more, not {value!r}"
                )
        if not isinstance(self.on_attempts, tuple | list) or not all(
            is_whole_number(a) and a >= 1 for a in self.on_attempts
        ):
            raise InvalidInputError(
                f"on_attempts must be a tuple of attempt numbers from 1, e.g. (1, 2), not "
                f"{self.on_attempts!r}"
            )
        if self.max_preemptions is not None and not (
            is_whole_number(self.max_preemptions) and self.max_preemptions >= 0
        ):
            raise InvalidInputError(
                f"max_preemptions must be a whole number of 0 or more (or None), not "
                f"{self.max_preemptions!r}"
            )
        if self.after_metric is not None:
            if not (
                isinstance(self.after_metric, tuple | list)
                and len(self.after_metric) == 2
                and isinstance(self.after_metric[0], str)
                and self.after_metric[0]
                and is_whole_number(self.after_metric[1])
                and self.after_metric[1] >= 1
            ):
                raise InvalidInputError(
                    "after_metric must be (metric name, whole count of 1 or more), e.g. "
                    f"('train_loss', 2), not {self.after_metric!r}"
                )
            object.__setattr__(self, "after_metric", tuple(self.after_metric))
        object.__setattr__(self, "on_attempts", tuple(self.on_attempts))

    @property
    def restarts(self) -> bool:
        """True when the platform restarts a preempted run instead of failing it."""
        return self.mode is PreemptionMode.RESTART


def check_cluster_settings(name: object, max_concurrent_runs: object, preemption: object) -> None:
    """Refuses settings `LocalBackend.create_compute_cluster` cannot record.

    Raises:
        InvalidInputError: For an empty or reserved name, a limit that is not a whole number
            from 1 to `MAX_CONCURRENT_RUNS`, or a preemption that is not a `Preemption`.
    """
    if not isinstance(name, str) or not name.strip() or name in (DEFAULT_CLUSTER, DRIVER_CLUSTER):
        raise InvalidInputError(
            f"{name!r} cannot name a compute cluster: give a non-empty name other than "
            f"'{DEFAULT_CLUSTER}' (the default cluster) and '{DRIVER_CLUSTER}' (where "
            "pipelines' runs run), which always exist"
        )
    if not is_whole_number(max_concurrent_runs):
        raise InvalidInputError(
            f"max_concurrent_runs must be a whole number, not {max_concurrent_runs!r}"
        )
    if not 1 <= max_concurrent_runs <= MAX_CONCURRENT_RUNS:
        raise InvalidInputError(
            f"max_concurrent_runs must be from 1 to {MAX_CONCURRENT_RUNS}, not "
            f"{max_concurrent_runs}"
        )
    if preemption is not None and not isinstance(preemption, Preemption):
        raise InvalidInputError(f"preemption must be a Preemption(...) or None, not {preemption!r}")
