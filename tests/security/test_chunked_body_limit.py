"""Request bodies over `max_body_bytes` are refused with 413 whether their size is declared
(Content-Length), not declared (Transfer-Encoding: chunked, RFC 9112 §7.1) or declared
wrongly. Raw sockets against a real `did-auth serve` process, and the ASGI middleware for
a server that hands over more bytes than the Content-Length it passed on."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import pytest

from did_auth.edge.api.app import create_app
from tests.fixtures.servers import LiveServer, config_dict, settings_for, start_server, stop_server

LIMIT = 4096


@pytest.fixture(scope="module")
def server() -> Iterator[LiveServer]:
    srv = start_server(config_dict(max_body_bytes=LIMIT))
    yield srv
    stop_server(srv)


def _exchange(server: LiveServer, head: bytes, chunks: list[bytes]) -> tuple[int, bytes]:
    """Send the head, then the body pieces (as far as the server lets us); read the answer."""
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(head)
        try:
            for chunk in chunks:
                sock.sendall(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed before the whole body was sent
        data = b""
        try:
            while b"\r\n\r\n" not in data:
                got = sock.recv(65536)
                if not got:
                    break
                data += got
            status_line, _, rest = data.partition(b"\r\n")
            head_text, _, body = rest.partition(b"\r\n\r\n")
            length = 0
            for line in head_text.split(b"\r\n"):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            while len(body) < length:
                got = sock.recv(65536)
                if not got:
                    break
                body += got
        except ConnectionResetError:
            pass
    assert status_line.startswith(b"HTTP/1.1 "), data[:200]
    return int(status_line.split()[1]), body


def _chunked(payload: bytes, size: int = 1000) -> list[bytes]:
    parts = [payload[i : i + size] for i in range(0, len(payload), size)]
    return [b"%x\r\n%s\r\n" % (len(p), p) for p in parts] + [b"0\r\n\r\n"]


def _head(path: str, ctype: str, extra: str, server: LiveServer) -> bytes:
    host = server.url.removeprefix("http://")
    return (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: {ctype}\r\n{extra}\r\n"
    ).encode()


def _big_json() -> bytes:
    return json.dumps({"client_id": "dapp", "pad": "x" * (4 * LIMIT)}).encode()


@pytest.mark.parametrize(
    ("path", "ctype", "payload"),
    [
        ("/siwe/nonce", "application/json", _big_json()),  # the hot path
        ("/siwe/verify", "application/json", _big_json()),  # the hot path
        ("/did/challenge", "application/json", _big_json()),  # a FastAPI JSON route
        ("/token", "application/x-www-form-urlencoded", b"grant_type=refresh_token&pad=" + b"x" * 4 * LIMIT),
        ("/authorize", "application/x-www-form-urlencoded", b"client_id=dapp&pad=" + b"x" * 4 * LIMIT),
    ],
)
def test_chunked_body_over_limit_is_413(server: LiveServer, path: str, ctype: str, payload: bytes) -> None:
    head = _head(path, ctype, "Transfer-Encoding: chunked\r\n", server)
    status, body = _exchange(server, head, _chunked(payload))
    assert status == 413, body
    answer = json.loads(body)
    assert answer["error"] == "invalid_request"
    assert str(LIMIT) in answer["error_description"]


def test_chunked_body_under_limit_still_works(server: LiveServer) -> None:
    head = _head("/siwe/nonce", "application/json", "Transfer-Encoding: chunked\r\n", server)
    status, body = _exchange(server, head, _chunked(b'{"client_id": "dapp"}', size=5))
    assert status == 200, body
    assert json.loads(body)["nonce"]


def test_declared_length_over_limit_is_413(server: LiveServer) -> None:
    payload = _big_json()
    head = _head("/siwe/nonce", "application/json", f"Content-Length: {len(payload)}\r\n", server)
    status, _ = _exchange(server, head, [payload])
    assert status == 413


def test_lying_content_length_never_smuggles_a_big_body(server: LiveServer) -> None:
    """Content-Length says 20 bytes, the chunked body is far over the limit: refused (the
    conflicting framing is a 400 from the HTTP parser, RFC 9112 §6.3, or the 413)."""
    head = _head(
        "/siwe/nonce", "application/json",
        "Content-Length: 20\r\nTransfer-Encoding: chunked\r\n", server,
    )
    status, _ = _exchange(server, head, _chunked(_big_json()))
    assert status in (400, 413)


def test_short_content_length_then_more_bytes_is_refused(server: LiveServer) -> None:
    """Content-Length under the limit with a far bigger body after it: the server reads the
    declared bytes only; the rest is not taken as a body (and not as a valid request)."""
    payload = _big_json()
    head = _head("/siwe/nonce", "application/json", "Content-Length: 21\r\n", server)
    status, _ = _exchange(server, head, [payload])
    assert status in (400, 413, 422)


async def test_body_longer_than_its_content_length_is_413() -> None:
    """An ASGI server that passes on more bytes than the Content-Length it reported: the
    middleware counts bytes, it does not trust the header."""
    settings = settings_for(max_body_bytes=LIMIT)
    app = create_app(settings)
    payload = _big_json()
    sent: list[dict[str, object]] = []
    pieces = [payload[i : i + 1000] for i in range(0, len(payload), 1000)]

    async def receive() -> dict[str, object]:
        if pieces:
            return {"type": "http.request", "body": pieces.pop(0), "more_body": bool(pieces)}
        return {"type": "http.disconnect"}

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": "/did/challenge", "raw_path": b"/did/challenge",
        "query_string": b"", "root_path": "", "client": ("127.0.0.1", 5000),
        "server": ("testserver", 80),
        "headers": [(b"host", b"testserver"), (b"content-type", b"application/json"),
                    (b"content-length", b"20")],
    }
    await app(scope, receive, send)  # type: ignore[arg-type]
    start = [m for m in sent if m["type"] == "http.response.start"]
    assert len(start) == 1 and start[0]["status"] == 413, sent
