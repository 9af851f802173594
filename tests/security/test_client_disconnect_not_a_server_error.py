"""A client that goes away in the middle of its request body is not a server error: no
`unhandled error` line with a traceback, and no 5xx counted in /metrics (anyone could
otherwise inflate the 5xx alert metric). The disconnect is counted on its own
(`didauth_client_disconnects_total`). Real `did-auth serve` process, raw sockets."""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.fixtures.servers import LiveServer, config_dict, start_server, stop_server
from tests.waits import wait_until

ROUTES = ["/token", "/revoke", "/introspect", "/authorize", "/siwe/verify", "/did/verify"]


@pytest.fixture(scope="module")
def server() -> Iterator[LiveServer]:
    srv = start_server(config_dict(metrics_public=True))
    yield srv
    stop_server(srv)


def _half_body_then_close(url: str, path: str, content_type: str) -> None:
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Content-Type: {content_type}\r\nContent-Length: 50\r\n\r\nab".encode()
        )
        time.sleep(0.2)  # the application is reading the body when the client leaves


def _disconnects(metrics: str) -> float:
    return sum(
        float(m.group(1))
        for m in re.finditer(r"^didauth_client_disconnects_total\{[^}]*\} (\S+)$", metrics, re.M)
    )


def _finished(metrics: str) -> float:
    """Requests to the routes under test that are over: disconnects, or answered (a route
    may refuse a content type it does not take before reading the body)."""
    answered = sum(
        float(m.group(2))
        for m in re.finditer(r"^didauth_http_requests_total\{route=\"([^\"]*)\"[^}]*\} (\S+)$",
                             metrics, re.M)
        if m.group(1) in ROUTES
    )
    return _disconnects(metrics) + answered


@pytest.mark.parametrize("content_type", ["application/x-www-form-urlencoded", "application/json"])
def test_mid_body_disconnect_is_not_a_500(server: LiveServer, content_type: str) -> None:
    before = httpx.get(server.url + "/metrics").text
    for path in ROUTES:
        _half_body_then_close(server.url, path, content_type)

    def counted() -> bool:
        return _finished(httpx.get(server.url + "/metrics").text) >= _finished(before) + len(ROUTES)

    wait_until(counted, 10, what="the requests to be over")
    metrics = httpx.get(server.url + "/metrics").text
    if content_type.endswith("urlencoded"):  # every route reads a form body
        assert _disconnects(metrics) >= _disconnects(before) + len(ROUTES), metrics
    fives = [line for line in metrics.splitlines()
             if line.startswith("didauth_http_requests_total") and 'status="5' in line]
    assert fives == [], fives
    log = server.output()
    assert "Traceback" not in log, log[-3000:]
    assert "ClientDisconnect" not in log, log[-3000:]
    assert "unhandled error" not in log, log[-3000:]
    # The server still answers.
    assert httpx.get(server.url + "/healthz").status_code == 200
