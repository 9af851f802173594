"""Refresh-token rotation and reuse detection (RFC 6819 §5.2.2.3, OAuth Security BCP)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import orjson
import pytest

from did_auth.adapters.store.memory import MemoryStore
from did_auth.adapters.store.redis import RedisStore
from did_auth.core.clock import FixedClock
from did_auth.core.errors import InvalidGrant
from did_auth.core.flows.revocations import FEED_STREAM, RevocationBook
from did_auth.core.ports.store import Store
from did_auth.core.tokens.issue import new_sid
from did_auth.core.tokens.sessions import Session, SessionStore, session_key
from tests.fixtures.redis_server import RedisServer


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[Store]:
    if request.param == "memory":
        yield MemoryStore()
        return
    server: RedisServer = request.getfixturevalue("redis_server")
    s = RedisStore.from_url(server.url)
    yield s
    await s.close()


def _book(store: Store, sessions: SessionStore) -> RevocationBook:
    return RevocationBook(store, sessions, sessions.clock, access_ttl=300, session_lifetime=86400)


def _session() -> Session:
    return Session(
        sid=new_sid(), sub="did:pkh:eip155:1:0xabc", client_id="dapp", audience="trading-api",
        scopes=("account:read",), auth_time=1000, amr=("siwe",), created_at=0, expires_at=0,
    )


async def test_refresh_stored_hashed_and_rotates(store: Store) -> None:
    clock = FixedClock(1_700_000_000)
    sessions = SessionStore(store, clock, refresh_ttl=3600, max_lifetime=86400)
    book = _book(store, sessions)
    s, rt1 = await sessions.create(_session())
    raw = await store.get(session_key(s.sid))
    assert raw is not None and rt1.encode() not in raw and rt1[3:].encode() not in raw
    s2, rt2 = await sessions.rotate(rt1, revocations=book)
    assert rt2 != rt1 and s2.sid == s.sid


async def test_reuse_after_grace_revokes_family(store: Store) -> None:
    clock = FixedClock(1_700_000_000)
    sessions = SessionStore(store, clock, refresh_ttl=3600, max_lifetime=86400, grace=10)
    book = _book(store, sessions)
    s, rt1 = await sessions.create(_session())
    _, rt2 = await sessions.rotate(rt1, revocations=book)  # the victim rotates
    clock.advance(30)
    with pytest.raises(InvalidGrant) as exc:
        await sessions.rotate(rt1, revocations=book)  # the attacker replays the stolen old token
    assert exc.value.reason == "refresh_reuse"
    with pytest.raises(InvalidGrant) as exc2:
        await sessions.rotate(rt2, revocations=book)  # ... and the victim's current token is dead too
    assert exc2.value.reason == "session_revoked"
    got = await sessions.get(s.sid)
    assert got is not None and got.revoked
    # The revocation is announced on the feed (once), so verifiers drop the access tokens.
    entries = [orjson.loads(raw) for _, raw in await store.feed_read(FEED_STREAM, None, 10_000)]
    assert [e["reason"] for e in entries if e.get("sid") == s.sid] == ["refresh_reuse"]


async def test_exact_retry_within_grace_is_honoured_once_window(store: Store) -> None:
    clock = FixedClock(1_700_000_000)
    sessions = SessionStore(store, clock, refresh_ttl=3600, max_lifetime=86400, grace=10)
    book = _book(store, sessions)
    _, rt1 = await sessions.create(_session())
    _, lost = await sessions.rotate(rt1, revocations=book)
    clock.advance(2)
    _, rt3 = await sessions.rotate(rt1, revocations=book)  # response was lost: retry with the same token
    assert rt3 != lost
    clock.advance(2)
    with pytest.raises(InvalidGrant) as exc:
        await sessions.rotate(lost, revocations=book)  # the superseded token is now reuse
    assert exc.value.reason == "refresh_reuse"


async def test_grace_window_does_not_extend(store: Store) -> None:
    clock = FixedClock(1_700_000_000)
    sessions = SessionStore(store, clock, refresh_ttl=3600, max_lifetime=86400, grace=10)
    book = _book(store, sessions)
    _, rt1 = await sessions.create(_session())
    await sessions.rotate(rt1, revocations=book)
    for _ in range(2):
        clock.advance(4)
        await sessions.rotate(rt1, revocations=book)
    clock.advance(4)  # 12 s after the original rotation: outside the window
    with pytest.raises(InvalidGrant) as exc:
        await sessions.rotate(rt1, revocations=book)
    assert exc.value.reason == "refresh_reuse"


async def test_expiry_and_absolute_lifetime(store: Store) -> None:
    clock = FixedClock(1_700_000_000)
    sessions = SessionStore(store, clock, refresh_ttl=100, max_lifetime=250)
    book = _book(store, sessions)
    _, rt = await sessions.create(_session())
    clock.advance(90)
    _, rt = await sessions.rotate(rt, revocations=book)
    clock.advance(90)
    _, rt = await sessions.rotate(rt, revocations=book)
    clock.advance(75)  # past the absolute lifetime, within refresh_ttl
    with pytest.raises(InvalidGrant):
        await sessions.rotate(rt, revocations=book)


async def test_concurrent_rotation_one_winner(store: Store) -> None:
    clock = FixedClock(1_700_000_000)
    sessions = SessionStore(store, clock, refresh_ttl=3600, max_lifetime=86400, grace=0)
    book = _book(store, sessions)
    _, rt = await sessions.create(_session())
    results = await asyncio.gather(*[sessions.rotate(rt, revocations=book) for _ in range(20)], return_exceptions=True)
    ok = [r for r in results if not isinstance(r, BaseException)]
    assert len(ok) == 1
    assert all(isinstance(r, InvalidGrant) for r in results if isinstance(r, BaseException))


@pytest.mark.parametrize("bad", ["", "rt_", "rt_" + "A" * 86, "nope", "rt_" + "!" * 86])
async def test_malformed_and_unknown_tokens(store: Store, bad: str) -> None:
    sessions = SessionStore(store, FixedClock(1), refresh_ttl=10, max_lifetime=10)
    book = _book(store, sessions)
    with pytest.raises(InvalidGrant):
        await sessions.rotate(bad, revocations=book)
