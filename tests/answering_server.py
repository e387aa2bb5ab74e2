"""A loopback HTTP server whose every GET gets the answer a test chooses (an API's stand-in)."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager

Answer = tuple[int, Mapping[str, str], bytes]
"""An answer: status, headers, body."""


@contextmanager
def answering(answer: Callable[[str], Answer]) -> Iterator[str]:
    """Serves `answer(path)` to each GET until the block ends; yields the server's `/api` URL."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status, headers, body = answer(self.path)
            self.send_response(status)
            for name, value in {"Content-Length": str(len(body)), **headers}.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}/api"
        finally:
            server.shutdown()
