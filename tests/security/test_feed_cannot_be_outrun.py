"""The revocation feed cannot be outrun.

Attacks and their refusals:

* Flood: revocations were trimmed by count (XADD MAXLEN ~ 100 000). Anyone able to cause
  100 000 revocations (their own logins, revoked one by one) pushed the entry of a stolen,
  still valid token out of the stream before a verifier read it. Now the stream is trimmed
  by age, past the longest token lifetime: a flood makes it longer, never forgetful.
* Expired entries: a page was `limit` stream rows, expired ones filtered out afterwards, so
  a run of expired entries produced an empty page and the follower took it for the end
  ("current") while a live revocation sat behind them. Now a page holds `limit` live
  entries or ends at the end of the feed (`more: false`).
* Partial read: a follower that stopped after `max_pages` pages called itself current.
  Now it is current only after a page that reaches the end.
* Cut off: a verifier that cannot reach the issuer for longer than `max_staleness`
  (default 30 s) refuses every token with 503 and a description saying the revocation
  feed is stale, instead of accepting tokens that may have been revoked meanwhile.
"""

from __future__ import annotations

import asyncio
import secrets
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from did_auth.adapters.store.memory import MemoryStore
from did_auth.adapters.store.redis import RedisStore
from did_auth.config.settings import Settings
from did_auth.core.clock import FixedClock
from did_auth.core.flows.revocations import FEED_STREAM, RevocationBook
from did_auth.core.ports.store import Store
from did_auth.services import Services
from did_auth.verifier import FeedFollower, TemporarilyUnavailable
from tests.edge.web.procs import ROOT, Proc, spawn
from tests.fixtures.redis_server import RedisServer, free_port
from tests.fixtures.servers import (
    LiveServer,
    config_dict,
    running_app,
    start_server,
    stop_server,
)
from tests.live_login import access_token

OLD_MAXLEN = 100_000
FLOOD_DB = "13"  # a Redis database of its own: the flood must not slow other tests


def _jti_claims(jti: str) -> dict[str, Any]:
    return {"jti": jti, "sid": "s-" + jti, "sub": "did:key:z" + jti, "iat": time.time()}


# --------------------------------------------------------------------------- in-process


@pytest.fixture
async def feed_app(
    app_settings: Settings,
) -> AsyncIterator[tuple[httpx.AsyncClient, Services, FixedClock]]:
    clock = FixedClock(time.time())
    async with running_app(app_settings, clock=clock) as (client, svc):
        yield client, svc, clock


def _fetch_through(client: httpx.AsyncClient, limit: int | None) -> Callable[[str], Any]:
    """A `FeedFollower` fetch (sync, run in a worker thread) served by the in-process app."""
    loop = asyncio.get_running_loop()

    def fetch(url: str) -> Any:
        if limit is not None:
            url += ("&" if "?" in url else "?") + f"limit={limit}"
        response = asyncio.run_coroutine_threadsafe(client.get(url), loop).result(30)
        assert response.status_code == 200, response.text
        return response.json()

    return fetch


async def _end_cursor(client: httpx.AsyncClient) -> str:
    r = await client.get("/revocations", params={"limit": "1000"})
    body = r.json()
    while body.get("more"):
        r = await client.get("/revocations", params={"since": body["cursor"], "limit": "1000"})
        body = r.json()
    return str(body["cursor"])


async def test_expired_entries_never_hide_a_live_one_behind_them(feed_app) -> None:  # type: ignore[no-untyped-def]
    client, svc, clock = feed_app
    start = await _end_cursor(client)
    now = clock.now()
    short_lived = [f"short-{secrets.token_hex(6)}-{i}" for i in range(25)]
    for jti in short_lived:
        await svc.revocations.revoke_jti(jti, now + 10, reason="test")
    live = f"live-{secrets.token_hex(8)}"
    await svc.revocations.revoke_jti(live, now + 300, reason="test")
    clock.advance(60)  # the 25 short-lived tokens have expired, `live` has not

    # More expired entries than a page: the page still delivers the live one.
    r = await client.get("/revocations", params={"since": start, "limit": "10"})
    assert r.status_code == 200, r.text
    page = r.json()
    assert [e["jti"] for e in page["revoked"]] == [live]
    assert page["more"] is False

    # A follower reading pages of 10 sees it in one poll, and only then is current.
    follower = FeedFollower(
        svc.settings.issuer, clock=clock, fetch=_fetch_through(client, 10),
        allow_insecure_http=True,
    )
    assert await asyncio.to_thread(follower.poll_once)
    assert follower.is_current()
    assert follower.is_revoked(_jti_claims(live))


async def test_follower_is_current_only_after_the_last_page(feed_app) -> None:  # type: ignore[no-untyped-def]
    client, svc, clock = feed_app
    now = clock.now()
    jtis = [f"page-{secrets.token_hex(6)}-{i}" for i in range(7)]
    for jti in jtis:
        await svc.revocations.revoke_jti(jti, now + 300, reason="test")
    # Pages of 2 entries, at most 2 pages per poll: one poll cannot reach the end.
    follower = FeedFollower(
        svc.settings.issuer, clock=clock, fetch=_fetch_through(client, 2), max_pages=2,
        allow_insecure_http=True,
    )
    assert not await asyncio.to_thread(follower.poll_once)
    assert not follower.is_current()
    with pytest.raises(TemporarilyUnavailable) as info:
        follower.is_revoked(_jti_claims("anything"))
    assert info.value.reason == "revocation_feed_stale"
    # Later polls continue from the cursor; the last one reaches the end.
    for _ in range(10_000):
        if await asyncio.to_thread(follower.poll_once):
            break
    assert follower.is_current()
    assert all(follower.is_revoked(_jti_claims(j)) for j in jtis)


# --------------------------------------------------------------------------- flood


@pytest.fixture(params=["memory", "redis"])
async def flood_store(
    request: pytest.FixtureRequest,
) -> AsyncIterator[Store]:
    if request.param == "memory":
        yield MemoryStore()
        return
    server: RedisServer = request.getfixturevalue("redis_server")
    store = RedisStore.from_url(server.url[:-1] + FLOOD_DB)
    await store.client.flushdb()
    yield store
    await store.client.flushdb()
    await store.close()


async def test_a_flood_of_revocations_does_not_push_out_a_live_entry(flood_store: Store) -> None:
    clock = FixedClock(time.time())
    book = RevocationBook(
        store=flood_store, sessions=None, clock=clock,  # type: ignore[arg-type]
        access_ttl=300, session_lifetime=86_400,
    )
    stolen = "stolen-" + secrets.token_hex(8)
    assert await book.revoke_jti(stolen, clock.now() + 300, reason="stolen") is not False
    flood = OLD_MAXLEN + 500
    for base in range(0, flood, 2_000):
        await asyncio.gather(*[
            book.revoke_jti(f"flood-{base + i}", clock.now() + 300, reason="flood")
            for i in range(min(2_000, flood - base))
        ])
    first = await book.feed(None, 1)
    assert [e["jti"] for e in first["revoked"]] == [stolen], "the live entry was trimmed"
    # And a follower reading the whole feed from the start gets it.
    rows = await flood_store.feed_read(FEED_STREAM, None, 2)
    assert len(rows) == 2
    if isinstance(flood_store, RedisStore):
        assert await flood_store.client.xlen(FEED_STREAM) == flood + 1


# --------------------------------------------------------------------------- cut off


@pytest.fixture
def cut_off_stack(redis_server: RedisServer) -> Iterator[tuple[LiveServer, Proc]]:
    workdir = Path(tempfile.mkdtemp(prefix="did-auth-stale-"))
    issuer = start_server(config_dict(
        redis_url=redis_server.own_db(14),
        key_encryption_key_file=str(workdir / "kek.bin"),
    ))
    port = free_port()
    api: Proc | None = None
    try:
        api = spawn(
            [
                sys.executable,
                str(ROOT / "examples" / "trading_api.py"),
                "--issuer", issuer.url, "--audience", "trading-api", "--port", str(port),
                "--revocation-interval", "0.2", "--max-staleness", "3",
            ],
            f"http://127.0.0.1:{port}",
            workdir / "trading.log",
        )
        yield issuer, api
    finally:
        if api is not None:
            api.stop()
        if issuer.proc.poll() is None:
            stop_server(issuer)




def test_verifier_cut_off_from_the_issuer_refuses_tokens(
    cut_off_stack: tuple[LiveServer, Proc],
) -> None:
    issuer, api = cut_off_stack
    headers = {"Authorization": f"Bearer {access_token(issuer.url)}"}
    r = httpx.get(api.url + "/account", headers=headers)
    assert r.status_code == 200, r.text
    stop_server(issuer)  # the issuer (and its feed) is gone; the JWKS stays cached
    cut_at = time.monotonic()
    while True:
        r = httpx.get(api.url + "/account", headers=headers)
        if r.status_code != 200:
            break
        assert time.monotonic() - cut_at < 15, "still accepting tokens with a stale feed"
        time.sleep(0.1)
    # Not before max_staleness (3 s) minus the time since the view was last known current:
    # one poll interval (0.2 s) when polling, one heartbeat period when following the stream
    # (0.75 s: the follower asks for one every max_staleness / 4); and with a clear reason.
    assert time.monotonic() - cut_at > 2.2
    assert r.status_code == 503, r.text
    body = r.json()
    assert body["error"] == "temporarily_unavailable"
    assert "revocation feed is stale" in body["error_description"], body
    assert r.headers.get("retry-after")


async def test_scan_bound_says_more_and_moves_past_expired_entries(flood_store: Store) -> None:
    """One request scans a bounded number of entries; when that bound stops it, the page says
    `more: true` with the cursor behind the expired entries, so nobody mistakes it for the end."""
    clock = FixedClock(time.time())
    book = RevocationBook(
        store=flood_store, sessions=None, clock=clock,  # type: ignore[arg-type]
        access_ttl=300, session_lifetime=86_400,
    )
    expired = 12_000
    for base in range(0, expired, 2_000):
        await asyncio.gather(*[
            book.revoke_jti(f"old-{base + i}", clock.now() + 5, reason="test")
            for i in range(2_000)
        ])
    live = "live-" + secrets.token_hex(8)
    await book.revoke_jti(live, clock.now() + 300, reason="test")
    clock.advance(60)
    pages, cursor, seen = 0, None, []
    while True:
        page = await book.feed(cursor, 500)
        pages += 1
        seen += [e["jti"] for e in page["revoked"]]
        assert page["cursor"] != cursor or not page["more"]
        cursor = page["cursor"]
        if not page["more"]:
            break
    assert seen == [live] and pages == 2
