"""Slow-body DoS: a client that sends a complete request head and then its body a byte at
a time (or not at all) is cut off `body_timeout` seconds (default 10) after the end of its
head, with a 408 when no response has started; and one peer address holds at most
`max_connections_per_ip` connections at once per worker (direct peers; trusted proxies are
not counted). Real `did-auth serve` processes, raw sockets."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

from did_auth.config.settings import Settings
from tests.fixtures.redis_server import RedisServer
from tests.fixtures.servers import LiveServer, config_dict, start_server, stop_server

TIMEOUT = 2.0


@pytest.fixture(scope="module")
def server() -> Iterator[LiveServer]:
    srv = start_server(config_dict(header_timeout=30, body_timeout=TIMEOUT))
    yield srv
    stop_server(srv)


def _connect(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=30)


def _head(path: str = "/token", length: int = 50) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
        f"Content-Length: {length}\r\n\r\n"
    ).encode()


def _response(sock: socket.socket) -> bytes:
    """One whole response (head and Content-Length body)."""
    data = b""
    while b"\r\n\r\n" not in data:
        got = sock.recv(4096)
        assert got, data
        data += got
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
    while len(body) < length:
        got = sock.recv(4096)
        assert got, data
        body += got
    return data


def _cut_off_after(sock: socket.socket, trickle: list[bytes], every: float, limit: float
                   ) -> tuple[float, bytes]:
    """Send `trickle` one piece per `every` seconds until the server closes the connection;
    return the seconds that took and what it answered (or fail after `limit`)."""
    start = time.monotonic()
    sock.settimeout(every)
    pieces = list(trickle)
    answer = b""
    while time.monotonic() - start < limit:
        if pieces:
            try:
                sock.sendall(pieces.pop(0))
            except (BrokenPipeError, ConnectionResetError):
                return time.monotonic() - start, answer
        try:
            got = sock.recv(4096)
        except TimeoutError:
            continue
        except ConnectionResetError:
            return time.monotonic() - start, answer
        if got == b"":
            return time.monotonic() - start, answer
        answer += got
    pytest.fail(f"connection still open after {limit} s (answer so far {answer[:100]!r})")


def test_one_byte_of_a_body_is_cut_off(server: LiveServer) -> None:
    with _connect(server.url) as sock:
        sock.sendall(_head() + b"g")
        took, answer = _cut_off_after(sock, [], every=0.25, limit=TIMEOUT + 5)
    assert TIMEOUT - 0.5 <= took <= TIMEOUT + 2
    assert answer == b"" or answer.startswith(b"HTTP/1.1 408"), answer[:200]


def test_trickled_body_is_cut_off(server: LiveServer) -> None:
    with _connect(server.url) as sock:
        sock.sendall(_head())
        took, answer = _cut_off_after(sock, [b"g"] * 49, every=0.2, limit=TIMEOUT + 5)
    assert took <= TIMEOUT + 2
    assert answer == b"" or answer.startswith(b"HTTP/1.1 408"), answer[:200]


def test_slow_but_timely_body_and_the_next_request_still_work(server: LiveServer) -> None:
    body = b"grant_type=refresh_token&refresh_token=x&client_id=dapp"
    with _connect(server.url) as sock:
        sock.sendall(_head(length=len(body)))
        for i in range(0, len(body), 20):
            time.sleep(TIMEOUT / 5)
            sock.sendall(body[i : i + 20])
        answer = _response(sock)
        assert answer.startswith(b"HTTP/1.1 400"), answer[:200]  # the app's own answer
        time.sleep(TIMEOUT + 0.5)  # the deadline ended with the body: no late close
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert _response(sock).startswith(b"HTTP/1.1 200")


def test_every_worker_cuts_slow_bodies(redis_server: RedisServer) -> None:
    srv = start_server(
        config_dict(
            redis_url=redis_server.own_db(13),  # a database of its own (its own KEK)
            key_encryption_key_file="kek.bin",
            body_timeout=TIMEOUT,
        ),
        workers=2,
    )
    try:
        socks = [_connect(srv.url) for _ in range(8)]  # spread over both workers
        for s in socks:
            s.sendall(_head() + b"g")
        start = time.monotonic()
        for s in socks:
            took, _ = _cut_off_after(s, [], every=0.25, limit=TIMEOUT + 5)
            assert took <= TIMEOUT + 2
            s.close()
        assert time.monotonic() - start <= TIMEOUT + 3
    finally:
        stop_server(srv)


def test_connections_per_peer_address_are_capped() -> None:
    cap = 8
    srv = start_server(config_dict(max_connections_per_ip=cap))
    try:
        held = [_connect(srv.url) for _ in range(cap)]
        for s in held:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert _response(s).startswith(b"HTTP/1.1 200")  # kept alive, still counted
        with _connect(srv.url) as extra:
            took, answer = _cut_off_after(extra, [], every=0.1, limit=3)
        assert took < 1 and answer == b""
        held.pop().close()
        time.sleep(0.2)
        with _connect(srv.url) as again:
            again.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert _response(again).startswith(b"HTTP/1.1 200")
        for s in held:
            s.close()
    finally:
        stop_server(srv)


def test_defaults() -> None:
    settings = Settings()
    assert settings.body_timeout == 10
    assert settings.max_connections_per_ip == 256
