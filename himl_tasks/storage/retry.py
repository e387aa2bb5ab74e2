"""Retrying transient failures with exponential backoff and jitter."""

from __future__ import annotations

import random
from dataclasses import dataclass

TRANSIENT_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
"""HTTP statuses worth retrying: timeouts, throttling, and server-side failures."""


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a request is retried.

    Attributes:
        attempts: Total tries, the first included.
        base_delay: Seconds before the first retry; doubled for each further one.
        max_delay: Upper bound of one wait.
    """

    attempts: int = 6
    base_delay: float = 0.25
    max_delay: float = 8.0

    def delay(self, retry_number: int) -> float:
        """Seconds to wait before retry `retry_number` (1 for the first retry), with jitter."""
        ceiling = min(self.max_delay, self.base_delay * 2 ** (retry_number - 1))
        return random.uniform(ceiling / 2, ceiling)
