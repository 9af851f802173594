"""The revocation stream's core (flows/revocation_stream.py) on the in-memory store: the
events as the WHATWG event-stream format writes them, resume by cursor, reset, heartbeats,
the bounds, and the slot given back when a stream ends."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import orjson
import pytest

from did_auth.adapters.store.memory import MemoryStore
from did_auth.core.clock import SystemClock
from did_auth.core.errors import InvalidRequest, RateLimited, TemporarilyUnavailable
from did_auth.core.flows.revocation_stream import RevocationStream, RevocationStreams
from did_auth.core.flows.revocations import RevocationBook
from did_auth.core.tokens.sessions import SessionStore


def _book() -> RevocationBook:
    store = MemoryStore()
    clock = SystemClock()
    sessions = SessionStore(store, clock, refresh_ttl=3600, max_lifetime=86400)
    return RevocationBook(store, sessions, clock, access_ttl=300, session_lifetime=86400)


def _blocks(raw: bytes) -> list[dict[str, str]]:
    """Split an event stream into its blocks ({field: value}; comments under ':')."""
    out = []
    for block in raw.decode().split("\n\n"):
        if not block:
            continue
        fields: dict[str, str] = {}
        for line in block.split("\n"):
            name, _, value = line.partition(":")
            fields[name] = value[1:] if value.startswith(" ") else value
        out.append(fields)
    return out


async def _until_heartbeat(events: AsyncIterator[bytes]) -> bytes:
    got = b""
    while b": ok\n\n" not in got:
        got += await asyncio.wait_for(events.__anext__(), 10)
    return got


async def test_replay_then_live_with_cursors_as_ids() -> None:
    book = _book()
    streams = RevocationStreams(book, heartbeat=60)
    await book.revoke_jti("j1", time.time() + 300, reason="test")
    await book.revoke_jti("j2", time.time() + 300, reason="test")
    page = await book.feed(None)
    stream = streams.open(since=None, last_event_id=None, ip="1.2.3.4")
    events = stream.events()
    first = await _until_heartbeat(events)
    assert first.startswith(b"retry: ")
    blocks = [b for b in _blocks(first) if "data" in b]
    assert [orjson.loads(b["data"]) for b in blocks] == page["revoked"]
    assert blocks[-1]["id"] == page["cursor"]  # the event id is the feed cursor
    # A revocation written now reaches the open stream at once (in-process notification).
    started = time.monotonic()
    await book.revoke_jti("j3", time.time() + 300, reason="test")
    live = await _until_heartbeat(events)
    assert time.monotonic() - started < 1.0
    (event,) = [b for b in _blocks(live) if "data" in b]
    assert orjson.loads(event["data"])["jti"] == "j3"
    assert (await book.feed(blocks[-1]["id"]))["cursor"] == event["id"]
    await events.aclose()
    assert stream.closed and streams.open_streams == 0


async def test_last_event_id_resumes_and_wins_over_since() -> None:
    book = _book()
    streams = RevocationStreams(book, heartbeat=60)
    await book.revoke_jti("a", time.time() + 300, reason="test")
    cursor = (await book.feed(None))["cursor"]
    await book.revoke_jti("b", time.time() + 300, reason="test")
    stream = streams.open(since="0-0", last_event_id=cursor, ip="1.2.3.4")
    got = await _until_heartbeat(stream.events())
    assert [orjson.loads(b["data"])["jti"] for b in _blocks(got) if "data" in b] == ["b"]
    stream.close()


async def test_a_cursor_beyond_the_head_is_a_reset_like_the_feed() -> None:
    book = _book()
    streams = RevocationStreams(book, heartbeat=60)
    await book.revoke_jti("a", time.time() + 300, reason="test")
    assert (await book.feed("99999999999999-0"))["reset"] is True
    stream = streams.open(since=None, last_event_id="99999999999999-0", ip="1.2.3.4")
    blocks = _blocks(await _until_heartbeat(stream.events()))
    assert blocks[1] == {"event": "reset", "id": "0-0", "data": '{"reset":true}'}
    assert orjson.loads(blocks[2]["data"])["jti"] == "a"
    stream.close()


async def test_heartbeat_when_idle() -> None:
    streams = RevocationStreams(_book(), heartbeat=0.2)
    stream = streams.open(since=None, last_event_id=None, ip="1.2.3.4")
    events = stream.events()
    await _until_heartbeat(events)
    started = time.monotonic()
    assert await asyncio.wait_for(events.__anext__(), 5) == b": ok\n\n"
    assert time.monotonic() - started < 2.0
    await events.aclose()


def test_malformed_cursor_is_invalid_request() -> None:
    streams = RevocationStreams(_book())
    with pytest.raises(InvalidRequest):
        streams.open(since=None, last_event_id="not-a-cursor", ip="1.2.3.4")
    with pytest.raises(InvalidRequest):
        streams.open(since="1-x", last_event_id=None, ip="1.2.3.4")
    assert streams.open_streams == 0


async def test_bounds_per_address_and_per_process_and_slots_come_back() -> None:
    streams = RevocationStreams(_book(), max_streams=3, max_per_ip=2)
    held: list[RevocationStream] = [
        streams.open(since=None, last_event_id=None, ip="10.0.0.1") for _ in range(2)
    ]
    with pytest.raises(RateLimited) as too_many:
        streams.open(since=None, last_event_id=None, ip="10.0.0.1")
    assert too_many.value.retry_after >= 1
    held.append(streams.open(since=None, last_event_id=None, ip="10.0.0.2"))
    with pytest.raises(TemporarilyUnavailable):
        streams.open(since=None, last_event_id=None, ip="10.0.0.3")
    held[0].close()
    held[0].close()  # idempotent
    held.append(streams.open(since=None, last_event_id=None, ip="10.0.0.1"))
    for stream in held:
        stream.close()
    assert streams.open_streams == 0
    await streams.close()


async def test_a_client_may_ask_for_more_frequent_heartbeats() -> None:
    streams = RevocationStreams(_book())
    for bad in ("0.1", "6", "x", "1e1", "-1"):
        with pytest.raises(InvalidRequest):
            streams.open(since=None, last_event_id=None, ip="1.2.3.4", heartbeat=bad)
    stream = streams.open(since=None, last_event_id=None, ip="1.2.3.4", heartbeat="0.50")
    events = stream.events()
    await _until_heartbeat(events)
    started = time.monotonic()
    assert await asyncio.wait_for(events.__anext__(), 5) == b": ok\n\n"
    assert time.monotonic() - started < 1.5
    await events.aclose()
