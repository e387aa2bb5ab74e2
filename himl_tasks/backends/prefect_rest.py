"""Requests to the Prefect API's REST interface: a deadline on each, its errors said once.

What talks to Prefect below the Prefect wing (DESIGN.md's layers: only `himl_tasks/prefect`,
`flows` and `scripts` import prefect) talks through this: `himl --workspace <saved block>`
reading the block (`himl_tasks.cli.saved_blocks`) and the local backend's published
pipelines and schedules, which are Prefect deployments
(`himl_tasks.backends.local.pipeline_deployments`). The API is found as Prefect finds it
(`himl_tasks.backends.prefect_api`); the endpoints and payloads are those Prefect 3.8's own
client sends (`prefect/client/orchestration/`).

A request that meets a transient failure (the server says "later", a connection is lost) is
sent again, at most `RETRIES` times with growing pauses, as Prefect's own client does, all
within `REQUEST_DEADLINE_SECONDS` (an answer that trickles in never meets a read timeout). An API
that does not answer, refuses the credential, or answers what a Prefect 3 API would not, is a
`ConfigurationError` that says what was being done and what to do; nothing here
writes a header (the credential) into a message.
"""

from __future__ import annotations

import threading
import time
import types
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote

from himl_tasks.backends.prefect_api import API_URL, PrefectApi
from himl_tasks.errors import ConfigurationError

if TYPE_CHECKING:
    import httpx

REQUEST_SECONDS = 10.0
"""The deadline of each phase (connect, read, write) of each request to the Prefect API."""
REQUEST_DEADLINE_SECONDS = 60.0
"""The deadline of each request, its retries included: an answer that trickles in, a byte
at a time, meets no phase's deadline."""
RETRIES = 5
"""Times a request is sent again after a transient failure, as Prefect's client does."""
MAX_PAUSE_SECONDS = 8.0
"""The longest pause before sending again (Prefect's client backs off 2**n seconds)."""
# What Prefect's client sends again (`prefect.client.base.PrefectHttpxAsyncClient.send`): the
# server's answers that say "later" (a busy database answers 503), and a connection lost
# once made. A connection that cannot be made is not: a wrong URL fails fast.
_TRANSIENT_STATUSES = frozenset({408, 429, 502, 503})

_T = TypeVar("_T", dict[str, Any], list[Any])


def path_part(text: str) -> str:
    """`text` as one segment of a URL's path (a name with '/' or '%' stays one segment)."""
    return quote(text, safe="")


class PrefectRest:
    """A session of requests to one Prefect API, for one purpose (a context manager).

    Args:
        api: The API (`find_prefect_api()`).
        doing: What the requests are for, as an error message starts: "cannot publish
            pipeline 'nightly'".
    """

    def __init__(self, api: PrefectApi, doing: str) -> None:
        import httpx  # here: it takes as long to import as the rest of `himl`

        self.api = api
        self.doing = doing
        self._client = httpx.Client(
            base_url=api.url, headers=api.headers(), timeout=REQUEST_SECONDS
        )

    def __enter__(self) -> PrefectRest:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: types.TracebackType | None,
    ) -> None:
        self._client.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, str] | None = None,
        absent: tuple[int, ...] = (),
    ) -> httpx.Response | None:
        """Sends one request; returns its response when it succeeded (HTTP 2xx), else raises.

        Args:
            method: "GET", "POST", ...
            path: The endpoint under the API's URL, e.g. "/deployments/filter"; names in it
                quoted with `path_part`.
            json: The body, if any.
            params: The query's parameters, if any.
            absent: Statuses that say the object is not there (404) or is there already
                (409): an answer of one of them gives None instead of raising.

        Raises:
            ConfigurationError: The API did not answer within the deadline, refused the
                credential, or answered with another error.
        """
        import httpx

        transient = (
            httpx.ReadTimeout,
            httpx.WriteTimeout,
            httpx.PoolTimeout,
            httpx.ReadError,
            httpx.WriteError,
            httpx.RemoteProtocolError,
        )
        deadline = time.monotonic() + REQUEST_DEADLINE_SECONDS
        try:
            for attempt in range(RETRIES + 1):
                pause = min(MAX_PAUSE_SECONDS, 0.5 * 2**attempt)
                try:
                    response = self._within(
                        deadline,
                        lambda: self._client.request(method, path, json=json, params=params),
                    )
                except transient:
                    if attempt == RETRIES:
                        raise
                    time.sleep(min(pause, max(0.0, deadline - time.monotonic())))
                    continue
                if response.status_code not in _TRANSIENT_STATUSES or attempt == RETRIES:
                    break
                wait = min(MAX_PAUSE_SECONDS, _retry_after(response) or pause)
                time.sleep(min(wait, max(0.0, deadline - time.monotonic())))
        except httpx.HTTPError as error:
            raise ConfigurationError(
                f"{self.doing}: the Prefect API at {self.api.url} (from {self.api.source}) "
                f"did not answer ({type(error).__name__}: {error}): start it (`prefect server "
                f"start`), or set {API_URL} to one that runs"
            ) from None
        if response.status_code in (401, 403):
            raise ConfigurationError(
                f"{self.doing}: the Prefect API at {self.api.url} refused (HTTP "
                f"{response.status_code}); set PREFECT_API_KEY or PREFECT_API_AUTH_STRING"
            )
        if response.status_code in absent:
            return None
        if not response.is_success:
            raise ConfigurationError(
                f"{self.doing}: the Prefect API at {self.api.url} answered HTTP "
                f"{response.status_code}{_detail(response)}; is it a Prefect 3 API?"
            )
        return response

    def _within(self, deadline: float, send: Callable[[], httpx.Response]) -> httpx.Response:
        """`send()`'s response, if it comes before `deadline` (`time.monotonic`).

        The request is sent from a thread of its own, left behind when the deadline passes
        (it ends with the connection, closed with this session).

        Raises:
            ConfigurationError: No whole response came in time.
        """
        outcome: list[httpx.Response | BaseException] = []

        def run() -> None:
            try:
                outcome.append(send())
            except BaseException as error:  # handed to the caller's thread
                outcome.append(error)

        sender = threading.Thread(target=run, name="himl-prefect-request", daemon=True)
        sender.start()
        sender.join(max(0.0, deadline - time.monotonic()))
        if not outcome:
            raise ConfigurationError(
                f"{self.doing}: the Prefect API at {self.api.url} (from {self.api.source}) "
                f"did not answer in whole within {REQUEST_DEADLINE_SECONDS:g} s: start it "
                f"(`prefect server start`), or set {API_URL} to one that runs"
            )
        if isinstance(outcome[0], BaseException):
            raise outcome[0]
        return outcome[0]

    def answer(self, response: httpx.Response | None, shape: type[_T], what: str) -> _T:
        """The response's JSON body, of the shape the endpoint answers with.

        Args:
            response: What `request` gave.
            shape: dict or list.
            what: What the body is, for the message if it is not: "a block document".

        Raises:
            ConfigurationError: There is no response (an object was absent), or its body is
                not JSON of that shape.
        """
        try:
            value = None if response is None else response.json()
        except ValueError:
            value = None
        if not isinstance(value, shape):
            raise ConfigurationError(
                f"{self.doing}: the Prefect API at {self.api.url} answered with no {what}; is "
                "it a Prefect 3 API?"
            )
        return value


def _retry_after(response: httpx.Response) -> float | None:
    """The pause the API asked for (`Retry-After` in seconds), if it asked."""
    try:
        return max(0.0, float(response.headers.get("Retry-After", "")))
    except ValueError:
        return None


def _detail(response: httpx.Response) -> str:
    """What the API said was wrong (FastAPI's `detail`), if it said so."""
    try:
        body = response.json()
    except ValueError:
        return ""
    detail = body.get("detail") if isinstance(body, dict) else None
    return f" ({detail})" if isinstance(detail, str) and detail else ""
