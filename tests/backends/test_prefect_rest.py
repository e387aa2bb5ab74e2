"""Requests to the Prefect API: sent again after a transient failure, within a bound."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from himl_tasks.backends import prefect_rest
from himl_tasks.backends.prefect_api import PrefectApi
from himl_tasks.backends.prefect_rest import RETRIES, PrefectRest
from himl_tasks.errors import ConfigurationError


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
    statuses, asked = fake.statuses, fake.asked
    monkeypatch.setattr(prefect_rest.time, "sleep", fake.pauses.append)

    class Answer(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            asked.append(self.path)
            status = statuses.pop(0) if statuses else 200
            body = json.dumps({"detail": "busy"} if status != 200 else {"ok": True}).encode()
            self.send_response(status)
            if status == 429:
                self.send_header("Retry-After", "3")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), Answer) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            fake.url = f"http://127.0.0.1:{server.server_address[1]}/api"
            yield fake
        finally:
            server.shutdown()


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
