"""A deadline for the request head: a connection that has not sent a complete request line
and header section within `header_timeout` seconds is closed.

uvicorn has no such timeout: a client that opens connections and sends its headers a byte
at a time (slowloris) holds a file descriptor each for as long as it likes. The protocol
classes here are uvicorn's own (httptools or h11) plus one timer per connection, armed when
the connection is made and whenever bytes of a new request arrive after the previous
response, and cancelled as soon as uvicorn has parsed a complete head (it then creates the
request's cycle). The body and the response are not covered (the body limit and the
application bound those); idle keep-alive connections are closed by uvicorn's own
`timeout_keep_alive`.

`protocol_factory(header_timeout)` is what `did-auth serve` passes to uvicorn as `http`;
it pickles, so every worker process of `--workers N` gets it.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

__all__ = ["H11WithHeaderTimeout", "protocol_factory"]


class _HeaderDeadline:
    """Mixin for a uvicorn HTTP protocol (`cycle`, `transport`, `loop` attributes)."""

    transport: asyncio.Transport
    loop: asyncio.AbstractEventLoop
    cycle: Any

    def __init__(self, *args: Any, header_timeout: float = 10.0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timeout = header_timeout
        self._header_timer: asyncio.TimerHandle | None = None

    def _arm(self) -> None:
        if self._header_timer is None:
            self._header_timer = self.loop.call_later(self._header_timeout, self._expired)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _expired(self) -> None:
        self._header_timer = None
        if not self.transport.is_closing():
            self.transport.close()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)  # type: ignore[misc]

    def data_received(self, data: bytes) -> None:
        before = self.cycle
        if before is not None and before.response_complete:
            self._arm()  # bytes of the next request on a kept-alive connection
        super().data_received(data)  # type: ignore[misc]
        if self.cycle is not before:
            self._disarm()  # uvicorn parsed a complete request head


class H11WithHeaderTimeout(_HeaderDeadline, H11Protocol):
    pass


try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # pragma: no cover - httptools is optional
    _HTTPTOOLS: type[asyncio.Protocol] | None = None
else:

    class HttpToolsWithHeaderTimeout(_HeaderDeadline, HttpToolsProtocol):
        pass

    _HTTPTOOLS = HttpToolsWithHeaderTimeout
    __all__ += ["HttpToolsWithHeaderTimeout"]


def protocol_factory(header_timeout: float, *, httptools: bool) -> functools.partial[Any]:
    """uvicorn's `http` option: the httptools (when wanted and installed) or h11 protocol
    with the header deadline."""
    cls: Callable[..., asyncio.Protocol] = H11WithHeaderTimeout
    if httptools and _HTTPTOOLS is not None:
        cls = _HTTPTOOLS
    return functools.partial(cls, header_timeout=header_timeout)
