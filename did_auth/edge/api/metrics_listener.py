"""`/metrics` access: its own listener (`metrics_listen`) or a bearer token on the main one.

Production configurations keep the Prometheus exposition off the public listener: either a
separate plain-HTTP listener on an internal address (`metrics_listen = "127.0.0.1:9100"`,
served by this small asyncio server inside each worker process; with `--workers N` worker
processes take the ports port .. port+N-1, the first free one each, since every process has
its own registry), or `Authorization: Bearer <metrics_token>` on the main listener (RFC 6750
§2.1). Without either, the main listener answers 404 unless `metrics_public` (the embedded
development defaults).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os

from did_auth.adapters.chain.watcher import WATCHER_REGISTRY
from did_auth.adapters.monitoring.metrics import CONTENT_TYPE, REGISTRY
from did_auth.config.settings import Settings

__all__ = ["MetricsListener", "bearer_allows", "exposition", "start_metrics_listener"]

log = logging.getLogger("did_auth.metrics")
WORKERS_ENV = "DID_AUTH_WORKERS"
_HEAD_LIMIT = 8192
_READ_TIMEOUT = 5.0


def exposition() -> bytes:
    """One exposition: the server's metrics, then the chain watchers'."""
    return (REGISTRY.expose() + WATCHER_REGISTRY.expose()).encode()


def bearer_allows(settings: Settings, authorization: str | None) -> bool | None:
    """On the main listener: True (serve), False (401: token missing or wrong) or None
    (404: /metrics is not served there)."""
    if settings.metrics_token:
        scheme, _, token = (authorization or "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(
            token.strip().encode(), settings.metrics_token.encode()
        )
    return True if settings.metrics_public else None


class MetricsListener:
    def __init__(self, server: asyncio.Server, host: str, port: int) -> None:
        self.server = server
        self.host = host
        self.port = port

    async def close(self) -> None:
        self.server.close()
        await self.server.wait_closed()


async def _handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), _READ_TIMEOUT)
        request_line = head[: min(len(head), _HEAD_LIMIT)].split(b"\r\n", 1)[0].split()
        if len(request_line) >= 2 and request_line[0] in (b"GET", b"HEAD") and (
            request_line[1].split(b"?", 1)[0] == b"/metrics"
        ):
            body = exposition()
            status, ctype = b"200 OK", CONTENT_TYPE.encode()
        else:
            body, status, ctype = b"not found\n", b"404 Not Found", b"text/plain"
        writer.write(
            b"HTTP/1.1 " + status + b"\r\nContent-Type: " + ctype
            + b"\r\nContent-Length: " + str(len(body)).encode()
            + b"\r\nConnection: close\r\n\r\n"
            + (body if request_line[:1] != [b"HEAD"] else b"")
        )
        await writer.drain()
    except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError):
        pass
    finally:
        writer.close()


async def start_metrics_listener(listen: str) -> MetricsListener:
    """Bind `host:port` (or, with DID_AUTH_WORKERS=N, the first free of N ports)."""
    host, _, port_text = listen.rpartition(":")
    host, port = host.strip("[]"), int(port_text)
    workers = max(1, int(os.environ.get(WORKERS_ENV, "1") or "1"))
    error: OSError | None = None
    for candidate in range(port, port + workers):
        try:
            server = await asyncio.start_server(
                _handle, host, candidate, limit=_HEAD_LIMIT, reuse_address=True
            )
        except OSError as exc:
            error = exc
            continue
        log.info("metrics on http://%s:%s/metrics", host, candidate)
        return MetricsListener(server, host, candidate)
    assert error is not None
    raise error
