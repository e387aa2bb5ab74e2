"""A loopback HTTP proxy in front of Azurite that injects network faults on request.

Each connection carries one request (the proxy answers with `Connection: close`). Faults queued
with `fail_next` hit the next requests in order:
- "none": forward unchanged (to let earlier requests through);
- "503": answer 503 Service Unavailable without contacting Azurite;
- "reset": close the connection without answering;
- "truncate": forward the request, then cut the response off halfway through its body;
- "lost": forward the request (the service does it), then close without answering;
- "corrupt": forward the request, then flip one bit in the middle of the response body.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from typing import Literal

Fault = Literal["none", "503", "reset", "truncate", "corrupt", "lost"]


class FaultyProxy:
    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self._upstream = (upstream_host, upstream_port)
        self._faults: deque[Fault] = deque()
        self._lock = threading.Lock()
        self.requests = 0
        self.request_heads: list[bytes] = []
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> FaultyProxy:
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *_: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def fail_next(self, count: int, fault: Fault) -> None:
        with self._lock:
            self._faults.extend([fault] * count)

    @property
    def pending_faults(self) -> int:
        with self._lock:
            return len(self._faults)

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()
        server.close()
        # Connections still being served end here, not when the loop is collected.
        pending = asyncio.all_tasks(self._loop)
        for task in pending:
            task.cancel()
        self._loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        self._loop.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            body = await reader.readexactly(length) if length else b""
            with self._lock:
                self.requests += 1
                self.request_heads.append(head)
                fault = self._faults.popleft() if self._faults else None
            if fault == "503":
                writer.write(
                    b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n"
                    b"Connection: close\r\n\r\n"
                )
                await writer.drain()
                return
            if fault == "reset":
                return
            response = await self._forward(_with_connection_close(head) + body)
            if fault == "lost":
                return
            body_start = response.index(b"\r\n\r\n") + 4
            middle = body_start + (len(response) - body_start) // 2
            if fault == "truncate":
                response = response[:middle]
            if fault == "corrupt":
                response = (
                    response[:middle] + bytes([response[middle] ^ 1]) + response[middle + 1 :]
                )
            await self._answer(head, response, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def _answer(self, head: bytes, response: bytes, writer: asyncio.StreamWriter) -> None:
        """Sends the response to the client (subclasses change how it travels)."""
        writer.write(response)
        await writer.drain()

    async def _forward(self, request: bytes) -> bytes:
        upstream_reader, upstream_writer = await asyncio.open_connection(*self._upstream)
        upstream_writer.write(request)
        await upstream_writer.drain()
        response = await upstream_reader.read()
        upstream_writer.close()
        return _with_connection_close(response)


def _with_connection_close(message: bytes) -> bytes:
    end = message.index(b"\r\n\r\n")
    lines = [
        line for line in message[:end].split(b"\r\n") if not line.lower().startswith(b"connection:")
    ]
    return b"\r\n".join([*lines, b"Connection: close"]) + message[end:]
