"""A minimal event-stream reader for the tests of `GET /revocations/stream`, written from the
WHATWG "server-sent events" format independently of the verifier's client (httpx streaming;
did-auth ends lines with LF), and logins revoked over HTTP."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import httpx

from tests.fixtures.servers import LiveServer
from tests.live_login import siwe_login

__all__ = ["Sse", "StreamServers", "is_heartbeat", "login_and_revoke", "names"]


@dataclass
class StreamServers:
    a: LiveServer
    b: LiveServer
    redis_url: str
    kek: str


def login_and_revoke(server: LiveServer, revoke_on: LiveServer | None = None) -> dict[str, Any]:
    """Log in at `server`, revoke the access token (RFC 7009) at `revoke_on` (default the
    same server); the token's claims (unverified: the test's own token)."""
    import jwt

    tokens = siwe_login(server.url)
    claims: dict[str, Any] = jwt.decode(tokens["access_token"], options={"verify_signature": False})
    r = httpx.post(
        (revoke_on or server).url + "/revoke",
        data={"token": tokens["access_token"], "client_id": "dapp"},
    )
    assert r.status_code == 200, r.text
    return claims


def is_heartbeat(block: dict[str, str]) -> bool:
    return list(block) == [""]  # a comment line alone


def names(block: dict[str, str]) -> set[str]:
    """The jti / sid an event's entry names."""
    import json

    if "data" not in block:
        return set()
    entry = json.loads(block["data"])
    return {v for k in ("jti", "sid") if isinstance(v := entry.get(k), str)}


class Sse:
    """One open stream; `blocks()` yields {field: value} per block (a comment as {":": text})."""

    def __init__(
        self, url: str, *, last_event_id: str | None = None, since: str | None = None,
        read_timeout: float = 12.0,
    ) -> None:
        headers = {"Accept": "text/event-stream"}
        if last_event_id is not None:
            headers["Last-Event-ID"] = last_event_id
        params = {"since": since} if since is not None else None
        self.client = httpx.Client(timeout=httpx.Timeout(10.0, read=read_timeout))
        self._cm = self.client.stream(
            "GET", url + "/revocations/stream", headers=headers, params=params
        )
        self.response = self._cm.__enter__()
        self._raw = self.response.iter_raw() if self.response.status_code == 200 else iter(())
        self._buffer = ""
        self.seen: list[dict[str, str]] = []
        self.last_id: str | None = None

    def next_block(self) -> dict[str, str]:
        while "\n\n" not in self._buffer:
            self._buffer += next(self._raw).decode()
        text, self._buffer = self._buffer.split("\n\n", 1)
        block: dict[str, str] = {}
        for line in text.split("\n"):
            name, _, value = line.partition(":")
            block[name] = value[1:] if value.startswith(" ") else value
        if "id" in block:
            self.last_id = block["id"]
        self.seen.append(block)
        return block

    def until(self, predicate: Any, timeout: float = 10.0, what: str = "") -> dict[str, str]:
        """Read blocks until one satisfies `predicate` (heartbeats bound each read)."""
        deadline = time.monotonic() + timeout
        while True:
            block = self.next_block()
            if predicate(block):
                return block
            if time.monotonic() > deadline:
                raise AssertionError(f"no event {what or predicate!r} within {timeout} s")

    def caught_up(self, timeout: float = 10.0) -> list[dict[str, str]]:
        """The events up to the first heartbeat from here (the replay, when just opened)."""
        start = len(self.seen)
        self.until(is_heartbeat, timeout, "heartbeat")
        return [b for b in self.seen[start:] if "data" in b or "id" in b]

    def close(self) -> None:
        self._cm.__exit__(None, None, None)
        self.client.close()

    def __enter__(self) -> Sse:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
