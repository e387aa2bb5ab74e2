"""Requests to the Prefect API: sent again after a transient failure, within a bound."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from himl_tasks.backends import prefect_rest
from himl_tasks.backends.prefect_api import PrefectApi
from himl_tasks.backends.prefect_rest import RETRIES, PrefectRest
from himl_tasks.errors import ConfigurationError
from tests.answering_server import answering


@dataclass
class Server:
    """A server answering each request with the next of `statuses` (200 when none is left)."""

    url: str = ""
    statuses: list[int] = field(default_factory=list)
    asked: list[str] = field(default_factory=list)
    pauses: list[float] = field(default_factory=list)  # the client's, before asking again


@pytest.fixture
def answers(monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    fake = Server()
    monkeypatch.setattr(prefect_rest.time, "sleep", fake.pauses.append)

    def answer(path: str) -> tuple[int, dict[str, str], bytes]:
        fake.asked.append(path)
        status = fake.statuses.pop(0) if fake.statuses else 200
        body = json.dumps({"detail": "busy"} if status != 200 else {"ok": True}).encode()
        return status, {"Retry-After": "3"} if status == 429 else {}, body

    with answering(answer) as url:
        fake.url = url
        yield fake


def test_a_busy_answer_is_asked_again(answers: Server) -> None:
    answers.statuses.extend([503, 429, 502])

    with PrefectRest(PrefectApi(answers.url, "a test"), "cannot test") as rest:
        response = rest.request("GET", "/flows/x")

    assert rest.answer(response, dict, "flow") == {"ok": True}
    assert answers.asked == ["/api/flows/x"] * 4
    assert answers.pauses == [0.5, 3.0, 2.0]  # growing, or as long as the API asked


def test_busy_answers_end_in_one_error_after_the_last_retry(answers: Server) -> None:
    url = answers.url
    answers.statuses.extend([503] * (RETRIES + 1))

    with (
        PrefectRest(PrefectApi(url, "a test"), "cannot test") as rest,
        pytest.raises(ConfigurationError) as error,
    ):
        rest.request("GET", "/flows/x")

    assert str(error.value) == (
        f"cannot test: the Prefect API at {url} answered HTTP 503 (busy); is it a Prefect 3 API?"
    )
    assert len(answers.asked) == RETRIES + 1
    assert max(answers.pauses) == prefect_rest.MAX_PAUSE_SECONDS


def test_a_refusal_or_an_error_is_not_asked_again(answers: Server) -> None:
    answers.statuses.extend([401, 500, 404])

    with PrefectRest(PrefectApi(answers.url, "a test"), "cannot test") as rest:
        with pytest.raises(ConfigurationError, match="refused"):
            rest.request("GET", "/a")
        with pytest.raises(ConfigurationError, match="HTTP 500"):
            rest.request("GET", "/b")
        assert rest.request("GET", "/c", absent=(404,)) is None

    assert answers.asked == ["/api/a", "/api/b", "/api/c"]
    assert answers.pauses == []


@pytest.fixture
def dripping_server() -> Iterator[str]:
    """A server that answers one byte of a never-ending header every 0.2 s (no read ever
    waits long enough for a read timeout); yields its `/api` URL."""
    stop = threading.Event()
    listener = socket.create_server(("127.0.0.1", 0))

    def drip(connection: socket.socket) -> None:
        with connection, contextlib.suppress(OSError):
            connection.recv(65536)
            connection.sendall(b"HTTP/1.1 200 OK\r\n")
            while not stop.wait(0.2):
                connection.sendall(b"X")

    def serve() -> None:
        with contextlib.suppress(OSError):
            while not stop.is_set():
                connection, _ = listener.accept()
                threading.Thread(target=drip, args=(connection,), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/api"
    finally:
        stop.set()
        listener.close()


def test_an_answer_that_never_ends_meets_the_requests_deadline(
    dripping_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(prefect_rest, "REQUEST_DEADLINE_SECONDS", 1.5)
    started = time.monotonic()

    with (
        PrefectRest(PrefectApi(dripping_server, "a test"), "cannot test") as rest,
        pytest.raises(ConfigurationError, match=r"did not answer .*within 1\.5 s"),
    ):
        rest.request("GET", "/flows/x")

    assert time.monotonic() - started < 10
