"""Deadlines for the request head and body, and a cap on connections per peer address.

A connection that has not sent a complete request line and header section within
`header_timeout` seconds is closed; one that has not sent the rest of its body within
`body_timeout` seconds of the end of its head gets a 408 (when no response has started)
and is closed; a peer address that already holds `max_connections_per_ip` connections to
this worker has its next one closed on accept (peers in `trusted_proxies` are not capped:
every client behind them shares their address).

uvicorn has no such timeout: a client that opens connections and sends its headers a byte
at a time (slowloris) holds a file descriptor each for as long as it likes. The protocol
classes here are uvicorn's own (httptools or h11) plus one timer per connection, armed when
the connection is made and whenever bytes of a new request arrive after the previous
response, and cancelled as soon as uvicorn has parsed a complete head (it then creates the
request's cycle). A second timer, armed then when the request has a body still to
come, is cancelled when uvicorn has the whole body (`cycle.more_body` false) or a response
has been completed: without it a client that sends a head and one byte of a 50-byte body
holds its connection (and the request's task) for as long as it likes (slow-body DoS).
The response is not covered (the application bounds it); idle keep-alive connections are
closed by uvicorn's own `timeout_keep_alive`.

`protocol_factory(header_timeout)` is what `did-auth serve` passes to uvicorn as `http`;
it pickles, so every worker process of `--workers N` gets it.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import logging
from collections.abc import Callable, Sequence
from typing import Any, Final

from uvicorn.protocols.http.h11_impl import H11Protocol

__all__ = ["LONG_LIVED", "H11WithHeaderTimeout", "protocol_factory"]

log = logging.getLogger("did_auth.edge.api")

_TIMEOUT_BODY = (
    b'{"error":"invalid_request","error_description":"request body not received in time"}'
)
_REQUEST_TIMEOUT = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
    b"cache-control: no-store\r\nconnection: close\r\n"
    b"content-length: %d\r\n\r\n%s" % (len(_TIMEOUT_BODY), _TIMEOUT_BODY)
)

#: Scope key of a long-lived response (see `shutdown`).
LONG_LIVED: Final = "did_auth.long_lived"

# Open connections per peer address in this worker process (the event loop is the only
# writer: no lock).
_OPEN: dict[str, int] = {}


class _HeaderDeadline:
    """Mixin for a uvicorn HTTP protocol (`cycle`, `transport`, `loop` attributes)."""

    transport: asyncio.Transport
    loop: asyncio.AbstractEventLoop
    cycle: Any

    def __init__(
        self,
        *args: Any,
        header_timeout: float = 10.0,
        body_timeout: float = 10.0,
        max_connections_per_ip: int = 0,
        trusted_proxies: Sequence[str] = (),
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self._header_timeout = header_timeout
        self._header_timer: asyncio.TimerHandle | None = None
        self._body_timeout = body_timeout
        self._body_timer: asyncio.TimerHandle | None = None
        self._max_per_ip = max_connections_per_ip
        self._trusted = [ipaddress.ip_network(n, strict=False) for n in trusted_proxies]
        self._peer: str | None = None  # counted in _OPEN

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

    def _disarm_body(self) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None

    def _body_expired(self) -> None:
        self._body_timer = None
        if self.transport.is_closing():
            return
        cycle = self.cycle
        if cycle is not None and not cycle.response_started:
            # RFC 9110 §15.5.9: 408 "the server did not receive a complete request message
            # within the time that it was prepared to wait"; the connection is closed, so
            # whatever the application answers later is dropped (the cycle is disconnected).
            self.transport.write(_REQUEST_TIMEOUT)
        self.transport.close()

    def _admit(self, transport: asyncio.BaseTransport) -> bool:
        """Count the peer's connection; False when its address is at the cap."""
        if self._max_per_ip <= 0:
            return True
        peer = transport.get_extra_info("peername")
        host = peer[0] if isinstance(peer, tuple) and peer else None
        if not isinstance(host, str):
            return True  # a Unix socket: no peer address to cap
        if self._trusted:
            try:
                addr = ipaddress.ip_address(host)
            except ValueError:
                addr = None
            if addr is not None and any(addr in net for net in self._trusted):
                return True  # a proxy of ours: its clients are told apart by X-Forwarded-For
        count = _OPEN.get(host, 0)
        if count >= self._max_per_ip:
            return False
        _OPEN[host] = count + 1
        self._peer = host
        return True

    def _release(self) -> None:
        host, self._peer = self._peer, None
        if host is not None:
            left = _OPEN.get(host, 1) - 1
            if left > 0:
                _OPEN[host] = left
            else:
                _OPEN.pop(host, None)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if not self._admit(transport):
            log.debug("connection refused: peer at max_connections_per_ip")
            # before uvicorn sees it: no task, no timers, no state
            transport.abort()  # type: ignore[attr-defined]
            return
        super().connection_made(transport)  # type: ignore[misc]
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self._disarm_body()
        if getattr(self, "transport", None) is None:
            return  # refused in connection_made: uvicorn never knew the connection
        self._release()
        super().connection_lost(exc)  # type: ignore[misc]

    def shutdown(self) -> None:
        """A graceful shutdown waits for every response to end; a long-lived one (an event
        stream, marked `LONG_LIVED` in its scope) never would, so its connection is closed
        now: the client reconnects (to another replica) and resumes by its Last-Event-ID."""
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete and cycle.scope.get(LONG_LIVED):
            self.transport.close()
            return
        super().shutdown()  # type: ignore[misc]

    def data_received(self, data: bytes) -> None:
        before = self.cycle
        if before is not None and before.response_complete:
            self._arm()  # bytes of the next request on a kept-alive connection
        super().data_received(data)  # type: ignore[misc]
        cycle = self.cycle
        if cycle is not before:
            self._disarm()  # uvicorn parsed a complete request head
            self._disarm_body()
            if cycle is not None and cycle.more_body and not cycle.response_complete:
                self._body_timer = self.loop.call_later(self._body_timeout, self._body_expired)
        elif self._body_timer is not None and (
            cycle is None or not cycle.more_body or cycle.response_complete
        ):
            self._disarm_body()  # the whole body is in (or the request was answered)


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


def protocol_factory(
    header_timeout: float,
    *,
    httptools: bool,
    body_timeout: float = 10.0,
    max_connections_per_ip: int = 0,
    trusted_proxies: Sequence[str] = (),
) -> functools.partial[Any]:
    """uvicorn's `http` option: the httptools (when wanted and installed) or h11 protocol
    with the header and body deadlines and the per-peer connection cap (0: none)."""
    cls: Callable[..., asyncio.Protocol] = H11WithHeaderTimeout
    if httptools and _HTTPTOOLS is not None:
        cls = _HTTPTOOLS
    return functools.partial(
        cls,
        header_timeout=header_timeout,
        body_timeout=body_timeout,
        max_connections_per_ip=max_connections_per_ip,
        trusted_proxies=tuple(trusted_proxies),
    )
