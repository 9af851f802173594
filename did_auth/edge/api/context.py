"""Per-request context at the edge: client IP (X-Forwarded-For only from trusted proxies),
a request id, and the request metrics (route template, status, latency)."""

from __future__ import annotations

import ipaddress
import logging
import re
import secrets
import time
from collections.abc import Iterable

from starlette.requests import ClientDisconnect, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from did_auth.adapters.monitoring.metrics import METRICS
from did_auth.core.flows.guard import RequestContext

__all__ = ["RequestContextMiddleware", "client_ip", "request_context"]

log = logging.getLogger("did_auth.edge.api")

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _parse_ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        return None


def client_ip(peer: str, forwarded_for: Iterable[str], trusted: list[Network]) -> str:
    """The client address: the peer, unless the peer is a trusted proxy, in which case the
    rightmost X-Forwarded-For hop that is not itself a trusted proxy (RFC 7239 §7.4 logic:
    only hops added by our own proxies can be believed)."""
    if not trusted:
        return peer  # no proxies configured: the peer is the client (no parsing needed)
    addr = _parse_ip(peer)
    if addr is None or not any(addr in net for net in trusted):
        return peer
    hops = [h.strip() for value in forwarded_for for h in value.split(",") if h.strip()]
    for hop in reversed(hops):
        ip = _parse_ip(hop)
        if ip is None:
            return peer  # a malformed chain: trust nothing it says
        if not any(ip in net for net in trusted):
            return str(ip)
    return str(_parse_ip(hops[0])) if hops else peer


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, trusted_proxies: list[str]) -> None:
        self.app = app
        self.trusted: list[Network] = [
            ipaddress.ip_network(n, strict=False) for n in trusted_proxies
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        peer = (scope.get("client") or ("", 0))[0]
        xff: list[str] = []
        rid = ""
        for name, value in scope.get("headers", ()):
            if name == b"x-forwarded-for":
                xff.append(value.decode("latin-1"))
            elif name == b"x-request-id":
                rid = value.decode("latin-1")
        if not _REQUEST_ID.match(rid):
            rid = secrets.token_hex(8)
        state = scope.setdefault("state", {})
        state["ctx"] = RequestContext(ip=client_ip(peer, xff, self.trusted), request_id=rid)
        status = 500
        started = False
        gone = False  # the client disconnected before any response started
        start = time.perf_counter()

        async def receive_wrapper() -> Message:
            nonlocal gone
            message = await receive()
            if message["type"] == "http.disconnect" and not started:
                gone = True
            return message

        async def send_wrapper(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                started = True
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", rid.encode()))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive_wrapper, send_wrapper)
        except ClientDisconnect:
            # A client that leaves in the middle of its body is not a server error: nobody
            # is left to answer, no 5xx is counted and no traceback logged (else anyone
            # could inflate the 5xx alert metric).
            gone = True
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            if gone:
                log.debug("client disconnected before the response: %s", route)
                METRICS.client_disconnects.labels(route=route).inc()
            else:
                METRICS.http_requests.labels(
                    route=route, method=scope.get("method", ""), status=str(status)
                ).inc()
            METRICS.http_request_duration.labels(route=route).observe(time.perf_counter() - start)


def request_context(request: Request) -> RequestContext:
    ctx = getattr(request.state, "ctx", None)
    return ctx if isinstance(ctx, RequestContext) else RequestContext()
