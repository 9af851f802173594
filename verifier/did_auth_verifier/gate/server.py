"""A small HTTP/1.1 server on asyncio's `Protocol` (standard library only) for the gate.

Why not an ASGI stack: a gateway sub-request is a bodiless GET whose answer is a status and a
few headers, sent over a keep-alive connection from the proxy. Parsing that head and writing
the answer directly costs a fraction of what a general-purpose framework spends per request,
and the gate's whole budget is the token check (`scripts/bench/gateway.py` compares the two).

What it does: request heads up to 16 KiB (431 beyond), keep-alive (HTTP/1.1 default,
`Connection: close` honoured, HTTP/1.0 closes), pipelined requests answered in order (a
request that waits on I/O pauses reading until its answer is written), a `Content-Length`
body up to 64 KiB skipped (larger ones, and chunked bodies, get 400 and a close), a
connection without a complete head for `header_timeout` (10 s) or idle for `idle_timeout`
(75 s) closed. Handlers return `(status, headers, body)` or an awaitable of it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Final

__all__ = ["HttpServer", "Request", "Response", "encode_response", "serve"]

log = logging.getLogger("did_auth_verifier.gate")

Response = tuple[int, list[tuple[str, str]], bytes]


class Request:
    __slots__ = ("headers", "method", "path", "peer", "target")

    def __init__(self, method: str, target: str, headers: dict[str, str], peer: str) -> None:
        self.method = method
        self.target = target
        self.path = target.split("?", 1)[0]
        self.headers = headers
        self.peer = peer


Handler = Callable[[Request], "Response | bytes | Awaitable[Response]"]
"""A handler answers `(status, headers, body)`, or a complete keep-alive answer already
encoded (`encode_response`; for answers a handler repeats), or an awaitable of a tuple."""

MAX_HEAD: Final = 16 * 1024
MAX_SKIPPED_BODY: Final = 64 * 1024
_REASONS: Final = {
    200: "OK", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
    405: "Method Not Allowed", 431: "Request Header Fields Too Large",
    500: "Internal Server Error", 503: "Service Unavailable",
}


def _encode(status: int, headers: list[tuple[str, str]], body: bytes, close: bool) -> bytes:
    lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Unknown')}"]
    lines += [f"{name}: {value}" for name, value in headers]
    lines.append(f"Content-Length: {len(body)}")
    if close:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def encode_response(status: int, headers: list[tuple[str, str]], body: bytes = b"") -> bytes:
    """A complete keep-alive answer, for a handler to return as it is."""
    return _encode(status, headers, body, False)


class _Connection(asyncio.Protocol):
    __slots__ = ("_buffer", "_closing", "_server", "_skip", "_task", "_transport", "head_started",
                 "last", "peer")

    def __init__(self, server: HttpServer) -> None:
        self._server = server
        self._buffer = bytearray()
        self._transport: asyncio.Transport | None = None
        self._skip = 0  # body bytes still to discard
        self._task: asyncio.Future[Response] | None = None
        self._closing = False
        self.peer = ""
        self.last = self.head_started = time.monotonic()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        peername = transport.get_extra_info("peername")
        self.peer = peername[0] if isinstance(peername, tuple) and peername else ""
        self._server.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._server.connections.discard(self)
        self._transport = None
        if self._task is not None:
            self._task.cancel()

    def data_received(self, data: bytes) -> None:
        self.last = time.monotonic()
        if not self._buffer:
            self.head_started = self.last
        self._buffer += data
        self._process()

    def expired(self, now: float, header_timeout: float, idle_timeout: float) -> bool:
        """A head (or skipped body) incomplete for `header_timeout`, or nothing received
        for `idle_timeout` while no answer is pending."""
        if self._task is not None:
            return False
        if self._buffer or self._skip:
            return now - self.head_started > header_timeout
        return now - self.last > idle_timeout

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def _process(self) -> None:
        buffer = self._buffer
        while self._task is None and not self._closing and self._transport is not None:
            if self._skip:
                taken = min(self._skip, len(buffer))
                del buffer[:taken]
                self._skip -= taken
                if self._skip:
                    return
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(buffer) > MAX_HEAD:
                    self._reply(431, [], b"", close=True)
                return
            if end > MAX_HEAD:
                self._reply(431, [], b"", close=True)
                return
            head = bytes(buffer[:end])
            del buffer[: end + 4]
            self._handle_head(head)

    def _handle_head(self, head: bytes) -> None:
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            self._reply(400, [], b"", close=True)
            return
        method, target, version = parts
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            # RFC 9112 §5.1: no whitespace between the name and the colon; §5.2: obsolete
            # line folding is rejected here (400).
            if not sep or not name or name[-1] in " \t" or name[0] in " \t":
                self._reply(400, [], b"", close=True)
                return
            name = name.lower()
            value = value.strip(" \t")
            old = headers.get(name)
            headers[name] = value if old is None else old + "\n" + value
        connection = headers.get("connection", "").lower()
        close = "close" in connection or (version == "HTTP/1.0" and "keep-alive" not in connection)
        if "transfer-encoding" in headers:
            self._reply(400, [], b"", close=True)
            return
        length = headers.get("content-length")
        if length is not None:
            if not length.isdigit() or int(length) > MAX_SKIPPED_BODY:
                self._reply(400, [], b"", close=True)
                return
            self._skip = int(length)
        request = Request(method, target, headers, self.peer)
        try:
            result = self._server.handler(request)
        except Exception:
            log.exception("gate handler failed")
            self._reply(500, [], b"", close=True)
            return
        if isinstance(result, bytes):
            transport = self._transport
            assert transport is not None
            if close:
                end = result.index(b"\r\n\r\n")
                result = result[:end] + b"\r\nConnection: close" + result[end:]
            transport.write(result)
            self.last = time.monotonic()
            if close:
                self._closing = True
                transport.close()
            return
        if isinstance(result, tuple):
            self._reply(*result, close=close)
            return
        # Answer in order: stop reading until this answer is written.
        assert self._transport is not None
        self._transport.pause_reading()
        task = asyncio.ensure_future(result)
        self._task = task
        task.add_done_callback(lambda t: self._finished(t, close))

    def _finished(self, task: asyncio.Future[Response], close: bool) -> None:
        self._task = None
        if task.cancelled() or self._transport is None:
            return
        exc = task.exception()
        if exc is not None:
            log.error("gate handler failed: %r", exc)
            self._reply(500, [], b"", close=True)
            return
        self._reply(*task.result(), close=close)
        if self._transport is not None and not self._closing:
            self._transport.resume_reading()
            self._process()

    def _reply(self, status: int, headers: list[tuple[str, str]], body: bytes,
               close: bool = False) -> None:
        transport = self._transport
        if transport is None:
            return
        transport.write(_encode(status, headers, body, close))
        self.last = time.monotonic()
        if close:
            self._closing = True
            transport.close()


class HttpServer:
    def __init__(self, handler: Handler, *, header_timeout: float = 10.0,
                 idle_timeout: float = 75.0) -> None:
        self.handler = handler
        self.header_timeout = header_timeout
        self.idle_timeout = idle_timeout
        self.connections: set[_Connection] = set()
        self._server: asyncio.Server | None = None
        self._sweeper: asyncio.Task[None] | None = None

    async def start(self, host: str, port: int) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _Connection(self), host, port, reuse_address=True, backlog=1024
        )
        self._sweeper = asyncio.create_task(self._sweep())

    @property
    def sockets(self) -> list[tuple[str, int]]:
        assert self._server is not None
        return [s.getsockname()[:2] for s in self._server.sockets]

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            now = time.monotonic()
            for conn in list(self.connections):
                if conn.expired(now, self.header_timeout, self.idle_timeout):
                    conn.close()

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
        if self._server is not None:
            self._server.close()
            for conn in list(self.connections):
                conn.close()
            await self._server.wait_closed()


async def serve(handler: Handler, host: str, port: int) -> HttpServer:
    server = HttpServer(handler)
    await server.start(host, port)
    return server
