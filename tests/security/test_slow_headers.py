"""A connection that has not sent a complete request head within `header_timeout` seconds
(default 10) is closed, so slow-header (slowloris) clients cannot hold file descriptors.
Real `did-auth serve` processes (one worker in memory; two workers on Redis), and both of
uvicorn's HTTP parsers (httptools, h11) in process."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Iterator

import pytest
import uvicorn

from did_auth.edge.api.header_timeout import protocol_factory
from tests.fixtures.redis_server import RedisServer, free_port
from tests.fixtures.servers import LiveServer, config_dict, start_server, stop_server
from tests.waits import wait_until_async

TIMEOUT = 2.0


@pytest.fixture(scope="module")
def server() -> Iterator[LiveServer]:
    srv = start_server(config_dict(header_timeout=TIMEOUT))
    yield srv
    stop_server(srv)


def _connect(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=30)


def _closed_after(sock: socket.socket, trickle: list[bytes], every: float, limit: float) -> float:
    """Send `trickle` one piece per `every` seconds (then nothing) until the server closes
    the connection; return the seconds that took (or fail after `limit`)."""
    start = time.monotonic()
    sock.settimeout(every)
    pieces = list(trickle)
    while time.monotonic() - start < limit:
        if pieces:
            try:
                sock.sendall(pieces.pop(0))
            except (BrokenPipeError, ConnectionResetError):
                return time.monotonic() - start
        try:
            got = sock.recv(4096)
        except TimeoutError:
            continue
        except ConnectionResetError:
            return time.monotonic() - start
        assert got == b"", f"the server answered an incomplete request: {got[:100]!r}"
        return time.monotonic() - start
    pytest.fail(f"connection still open after {limit} s")


def _slow_head(host: str) -> list[bytes]:
    head = f"GET /healthz HTTP/1.1\r\nHost: {host}\r\n".encode()
    return [head] + [b"X-Slow-%d: 1\r\n" % i for i in range(100)]


def _request(sock: socket.socket, host: str) -> bytes:
    sock.sendall(f"GET /healthz HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(4096)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
    while len(body) < length:  # the whole response: nothing left over for the next read
        body += sock.recv(4096)
    return data


def test_trickled_headers_are_cut_off(server: LiveServer) -> None:
    with _connect(server.url) as sock:
        took = _closed_after(sock, _slow_head("x"), every=0.25, limit=TIMEOUT + 5)
    assert TIMEOUT - 0.5 <= took <= TIMEOUT + 2


def test_silent_connection_is_closed(server: LiveServer) -> None:
    with _connect(server.url) as sock:
        took = _closed_after(sock, [], every=0.25, limit=TIMEOUT + 5)
    assert TIMEOUT - 0.5 <= took <= TIMEOUT + 2


def test_next_request_on_a_kept_alive_connection_has_the_same_deadline(server: LiveServer) -> None:
    with _connect(server.url) as sock:
        assert _request(sock, "x").startswith(b"HTTP/1.1 200")
        time.sleep(TIMEOUT + 0.5)  # idle between requests: uvicorn's keep-alive (5 s) rules
        assert _request(sock, "x").startswith(b"HTTP/1.1 200")
        took = _closed_after(sock, _slow_head("x"), every=0.25, limit=TIMEOUT + 5)
    assert took <= TIMEOUT + 2


def test_normal_and_slow_but_timely_requests_still_work(server: LiveServer) -> None:
    with _connect(server.url) as sock:
        assert _request(sock, "x").startswith(b"HTTP/1.1 200")
    with _connect(server.url) as sock:
        for piece in (b"GET /healthz HTTP/1.1\r\n", b"Host: x\r\n", b"Accept: */*\r\n"):
            sock.sendall(piece)
            time.sleep(TIMEOUT / 4)
        sock.sendall(b"\r\n")
        assert sock.recv(4096).startswith(b"HTTP/1.1 200")


def test_every_worker_cuts_slow_headers(redis_server: RedisServer) -> None:
    srv = start_server(
        config_dict(
            redis_url=redis_server.own_db(3),
            key_encryption_key_file="kek.bin",
            header_timeout=TIMEOUT,
        ),
        workers=2,
    )
    try:
        socks = [_connect(srv.url) for _ in range(8)]  # spread over both workers
        for s in socks:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        start = time.monotonic()
        for s in socks:
            took = _closed_after(s, [], every=0.25, limit=TIMEOUT + 5)
            assert took <= TIMEOUT + 2
            s.close()
        assert time.monotonic() - start <= TIMEOUT + 3
        with _connect(srv.url) as sock:
            assert _request(sock, "x").startswith(b"HTTP/1.1 200")
    finally:
        stop_server(srv)


@pytest.mark.timeout(60)
def test_default_deadline_is_ten_seconds() -> None:
    srv = start_server({})  # embedded defaults: header_timeout = 10
    try:
        with _connect(srv.url) as sock:
            took = _closed_after(sock, _slow_head("x"), every=0.5, limit=20)
        assert 9.5 <= took <= 12
    finally:
        stop_server(srv)


async def _ok(scope: dict[str, object], receive: object, send: object) -> None:
    assert scope["type"] in ("http", "lifespan")
    if scope["type"] == "lifespan":
        return
    headers = [(b"content-length", b"2")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})  # type: ignore[operator]
    await send({"type": "http.response.body", "body": b"ok"})  # type: ignore[operator]


@pytest.fixture(params=[True, False], ids=["httptools", "h11"])
async def parser_server(request: pytest.FixtureRequest) -> AsyncIterator[str]:
    port = free_port()
    config = uvicorn.Config(
        _ok, host="127.0.0.1", port=port, lifespan="off", log_level="warning",
        http=protocol_factory(1.0, httptools=request.param),
    )
    srv = uvicorn.Server(config)
    task = asyncio.create_task(srv.serve())
    await wait_until_async(lambda: srv.started or task.done(), 30, interval=0.01,
                           what="uvicorn to start")
    assert srv.started, task
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    await task


async def test_both_parsers_cut_slow_headers(parser_server: str) -> None:
    loop = asyncio.get_running_loop()

    def scenario() -> float:
        with _connect(parser_server) as sock:
            assert _request(sock, "x").startswith(b"HTTP/1.1 200")
        with _connect(parser_server) as sock:
            assert _request(sock, "x").startswith(b"HTTP/1.1 200")
            return _closed_after(sock, _slow_head("x"), every=0.1, limit=6)

    took = await loop.run_in_executor(None, scenario)
    assert took <= 3
