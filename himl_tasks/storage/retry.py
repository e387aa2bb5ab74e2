"""How patient requests are: timeouts, and retrying transient failures with backoff and jitter."""

from __future__ import annotations

import random
from dataclasses import dataclass

from himl_tasks.storage.options import seconds, whole_number

TRANSIENT_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
"""HTTP statuses worth retrying: timeouts, throttling, and server-side failures."""


@dataclass(frozen=True)
class RequestRetryPolicy:
    """How often and how patiently a request is retried.

    Attributes:
        attempts: Total tries, the first included (at least 1).
        base_delay: Seconds before the first retry; doubled for each further one.
        max_delay: Upper bound of one wait.

    Raises:
        InvalidInputError: If a value is out of range (attempts below 1, negative or infinite
            delays).
    """

    attempts: int = 6
    base_delay: float = 0.25
    max_delay: float = 8.0

    def __post_init__(self) -> None:
        whole_number("RequestRetryPolicy.attempts", self.attempts)
        seconds("RequestRetryPolicy.base_delay", self.base_delay)
        seconds("RequestRetryPolicy.max_delay", self.max_delay)

    def delay(self, retry_number: int) -> float:
        """Seconds to wait before retry `retry_number` (1 for the first retry), with jitter."""
        ceiling = min(self.max_delay, self.base_delay * 2 ** (retry_number - 1))
        return random.uniform(ceiling / 2, ceiling)


@dataclass(frozen=True)
class RequestTimeouts:
    """How long one request may wait before it counts as failed (and is retried).

    No request waits forever: connecting, each wait for the answer's next bytes, and sending a
    body all have a deadline. A request that times out is a transient failure, retried by the
    `RequestRetryPolicy`.

    Attributes:
        connect: Seconds to open a connection.
        read: Seconds of silence allowed while waiting for the answer (reset by each byte).
        min_send_rate: Bytes per second a request body, or an answer of known length (a blob
            or a range of it being downloaded), must at least move at: moving n bytes may take
            `connect + read + n / min_send_rate` seconds (a server that stops reading a body,
            or trickles an answer a byte at a time, would otherwise hold the request forever).

    Raises:
        InvalidInputError: If a value is not a positive finite number.
    """

    connect: float = 30.0
    read: float = 120.0
    min_send_rate: int = 64 * 1024

    def __post_init__(self) -> None:
        seconds("RequestTimeouts.connect", self.connect, zero_allowed=False)
        seconds("RequestTimeouts.read", self.read, zero_allowed=False)
        whole_number("RequestTimeouts.min_send_rate", self.min_send_rate)

    def total(self, body_bytes: int) -> float:
        """The deadline of a whole request that moves `body_bytes` (sent, or expected back).

        Every request has one, also those that move no body (a HEAD, a DELETE): a peer that
        trickles its answer a byte at a time, each within the `read` timeout, ends there.
        """
        return self.connect + self.read + body_bytes / self.min_send_rate
