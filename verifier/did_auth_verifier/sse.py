"""A Server-Sent Events client on the standard library (WHATWG HTML, "Server-sent events").

`SseParser` is the standard's event-stream interpretation ("9.2.6 Interpreting an event
stream"): lines end with CRLF, LF or CR; a blank line dispatches the event; a line starting
with ":" is a comment; `field: value` (one leading space of the value dropped) with the
fields `event`, `data` (joined by LF), `id` (ignored when it contains NULL; it sets the last
event ID even when no event is dispatched) and `retry` (ASCII digits only). Comments are
reported too: did-auth's heartbeats are comments.

`EventStream` opens one `GET` with `Accept: text/event-stream` (and `Last-Event-ID` to
resume) over `http.client`: no redirects followed, no cookies, the URL already checked by
`_http.check_url`. Every read waits at most `timeout` seconds for a byte, so a stream that
falls silent (no event, no heartbeat) raises `TimeoutError` instead of hanging. `abort()`
(from another thread) ends a blocked read at once.
"""

from __future__ import annotations

import http.client
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

__all__ = ["Comment", "EventStream", "SseEvent", "SseParser", "StreamRefused"]

MAX_LINE = 64 * 1024
MAX_DATA = 1 << 20


@dataclass(frozen=True, slots=True)
class SseEvent:
    """A dispatched event: its type ("message" by default), data, and the last event ID
    (the standard's: it persists from earlier events unless this one set it). `data` is
    None for a block that dispatched nothing (e.g. an `id:` line alone)."""

    type: str
    data: str | None
    last_event_id: str


@dataclass(frozen=True, slots=True)
class Comment:
    text: str


class SseParser:
    def __init__(self) -> None:
        self._buffer = b""
        self._data: list[str] = []
        self._data_size = 0
        self._type = ""
        self._id_set = False
        self.last_event_id = ""
        self.retry_ms: int | None = None

    def feed(self, chunk: bytes) -> list[SseEvent | Comment]:
        """Parse the bytes received; returns what they complete, in order."""
        buffer = self._buffer + chunk
        out: list[SseEvent | Comment] = []
        start = 0
        n = len(buffer)
        while True:
            cr = buffer.find(b"\r", start)
            lf = buffer.find(b"\n", start)
            if cr < 0 and lf < 0:
                break
            if cr >= 0 and (lf < 0 or cr < lf):
                if cr + 1 == n:
                    break  # a CR at the end: the LF of a CRLF may be in the next chunk
                end, nxt = cr, cr + 2 if buffer[cr + 1 : cr + 2] == b"\n" else cr + 1
            else:
                end, nxt = lf, lf + 1
            self._line(buffer[start:end], out)
            start = nxt
        self._buffer = buffer[start:]
        if len(self._buffer) > MAX_LINE:
            raise ValueError("event-stream line too long")
        return out

    def _line(self, raw: bytes, out: list[SseEvent | Comment]) -> None:
        line = raw.decode("utf-8", "replace")
        if not line:
            self._dispatch(out)
            return
        if line.startswith(":"):
            out.append(Comment(line[1:].lstrip(" ")))
            return
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "event":
            self._type = value
        elif name == "data":
            self._data_size += len(value) + 1
            if self._data_size > MAX_DATA:
                raise ValueError("event-stream event too large")
            self._data.append(value)
        elif name == "id":
            if "\0" not in value:
                self.last_event_id = value
                self._id_set = True
        elif name == "retry":
            if value.isascii() and value.isdigit():
                self.retry_ms = int(value)

    def _dispatch(self, out: list[SseEvent | Comment]) -> None:
        data, kind, id_set = self._data, self._type, self._id_set
        self._data, self._data_size, self._type, self._id_set = [], 0, "", False
        if data:
            out.append(SseEvent(kind or "message", "\n".join(data), self.last_event_id))
        elif id_set or kind:
            # Nothing is dispatched, but the last event ID moved: report the position.
            out.append(SseEvent(kind or "message", None, self.last_event_id))


class StreamRefused(OSError):
    """The server answered, but not with an event stream (`status`, `retry_after`)."""

    def __init__(self, status: int, retry_after: float | None) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status
        self.retry_after = retry_after


class EventStream:
    """One event-stream response; iterate `items()` for events and comments."""

    def __init__(
        self, url: str, *, last_event_id: str | None = None, timeout: float = 10.0,
        context: ssl.SSLContext | None = None,
    ) -> None:
        parts = urlsplit(url)
        host = parts.hostname or ""
        if parts.scheme == "https":
            self._conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                host, parts.port, timeout=timeout,
                context=context or ssl.create_default_context(),
            )
        elif parts.scheme == "http":
            self._conn = http.client.HTTPConnection(host, parts.port, timeout=timeout)
        else:
            raise ValueError("unsupported URL scheme")
        self._target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self._last_event_id = last_event_id
        self._response: http.client.HTTPResponse | None = None
        self.parser = SseParser()

    def open(self) -> None:
        """Send the request; raise `StreamRefused` unless a 200 `text/event-stream`."""
        headers = {
            "Accept": "text/event-stream",
            "Cache-Control": "no-cache",
            "User-Agent": "did-auth-verifier",
        }
        if self._last_event_id:
            headers["Last-Event-ID"] = self._last_event_id
        self._conn.request("GET", self._target, headers=headers)
        response = self._conn.getresponse()
        kind = (response.getheader("Content-Type") or "").split(";")[0].strip().lower()
        if response.status != 200 or kind != "text/event-stream":
            retry_after = response.getheader("Retry-After")
            self.close()
            wait = float(retry_after) if retry_after and retry_after.isdigit() else None
            raise StreamRefused(response.status if response.status != 200 else 415, wait)
        self._response = response

    def items(self) -> Iterator[SseEvent | Comment]:
        """Events and comments as they arrive; ends when the server ends the response.
        `TimeoutError` when no byte came for `timeout` seconds."""
        response = self._response
        if response is None:
            raise RuntimeError("open() first")
        while True:
            chunk = response.read1(65536)
            if not chunk:
                return
            yield from self.parser.feed(chunk)

    def abort(self) -> None:
        """End the stream now (safe from another thread: a blocked read returns)."""
        sock = self._conn.sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self) -> None:
        self._conn.close()
