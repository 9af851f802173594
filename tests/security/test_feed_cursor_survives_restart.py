"""A verifier's feed cursor survives a restart of the issuer.

Attack (outside penetration test, LOW): with the in-memory store the feed's ids were a
counter (`1-0`, `2-0`, ...) that a restart set back to zero, while a running verifier kept
its old, larger cursor and asked for entries after it: every revocation written after the
restart sat behind the cursor and was never read. The verifier still called itself current
(each empty page said `more: false`), so it accepted revoked tokens indefinitely.

Now the memory store's ids are time-based and monotonic like Redis stream ids
(`<ms>-<seq>`, never below the last one written), so a restarted server writes above any
cursor it handed out before; and a `since` cursor beyond the feed's head (a restart, a lost
Redis stream, a clock set back) is answered with a page from the start marked
`"reset": true`, which the verifier's follower takes as its new position (entries are
idempotent, nothing is lost).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from typing import Any

import httpx
import jwt
import pytest

from did_auth.adapters.store.memory import MemoryStore
from did_auth.adapters.store.redis import RedisStore
from did_auth.core.flows.revocations import FEED_STREAM
from did_auth.core.ports.store import Store
from did_auth.services import Services
from did_auth.verifier import FeedFollower
from tests.fixtures.redis_server import free_port
from tests.fixtures.servers import LiveServer, config_dict, start_server, stop_server
from tests.live_login import access_token
from tests.security.oauth_clients import siwe_login

Api = tuple[httpx.AsyncClient, Services]
WAIT = 15.0
FAR = "99999999999999-0"  # a cursor beyond any head (year 5138)


def _claims(token: str) -> dict[str, Any]:
    return dict(jwt.decode(token, options={"verify_signature": False}))


# --------------------------------------------------------------------------- the store


async def test_memory_feed_ids_are_time_based_and_monotonic() -> None:
    before = int(time.time() * 1000)
    store = MemoryStore()
    ids = [await store.feed_append("s", b"%d" % i, keep_for=60) for i in range(5)]
    parsed = [tuple(int(p) for p in i.split("-")) for i in ids]
    assert parsed == sorted(parsed) and len(set(parsed)) == 5
    assert before <= parsed[0][0] <= int(time.time() * 1000), ids
    # A restarted server (a new store) writes above every cursor handed out before (a
    # restart takes far longer than the millisecond slept here).
    time.sleep(0.002)
    restarted = MemoryStore()
    later = await restarted.feed_append("s", b"x", keep_for=60)
    assert tuple(int(p) for p in later.split("-")) > parsed[-1]
    # The clock going back does not make ids go back.
    wall = [2_000_000.0]
    stepped = MemoryStore(wall=lambda: wall[0])
    a = await stepped.feed_append("s", b"a", keep_for=60)
    wall[0] -= 5
    b = await stepped.feed_append("s", b"b", keep_for=60)
    assert (a, b) == ("2000000000-0", "2000000000-1")
    assert [c for c, _ in await stepped.feed_read("s", a, 10)] == [b]


async def test_feed_head_is_the_last_id_written(store: Store) -> None:
    """memory, Redis and Redis Cluster: the head survives trimming, is None for no stream."""
    stream = FEED_STREAM + ":head-test:" + secrets.token_hex(4)
    assert await store.feed_head(stream) is None
    first = await store.feed_append(stream, b"a", keep_for=60)
    last = await store.feed_append(stream, b"b", keep_for=60)
    assert await store.feed_head(stream) == last != first


# --------------------------------------------------------------------------- the feed


async def _revoke_one(client: httpx.AsyncClient) -> dict[str, Any]:
    r = await siwe_login(client)
    assert r.status_code == 200, r.text
    token = r.json()["access_token"]
    revoked = await client.post("/revoke", data={"token": token, "client_id": "dapp"})
    assert revoked.status_code == 200, revoked.text
    return _claims(token)


async def _read_all(client: httpx.AsyncClient, since: str | None) -> tuple[list[Any], str, bool]:
    entries: list[Any] = []
    reset = False
    params: dict[str, str] = {"limit": "1000"}
    if since is not None:
        params["since"] = since
    while True:
        page = (await client.get("/revocations", params=params)).json()
        reset = reset or page.get("reset", False)
        entries += page["revoked"]
        params["since"] = page["cursor"]
        if not page["more"]:
            return entries, page["cursor"], reset


async def test_cursor_beyond_the_head_rereads_from_the_start(api: Api) -> None:
    client, _ = api
    claims = await _revoke_one(client)
    entries, cursor, reset = await _read_all(client, FAR)
    assert reset, "a cursor beyond the feed's head was answered as if current"
    assert {"sid": claims["sid"]} in [{"sid": e.get("sid")} for e in entries]
    # From the cursor handed back the follower is current again: no further reset.
    again = (await client.get("/revocations", params={"since": cursor})).json()
    assert "reset" not in again and again["revoked"] == []
    # A cursor at or behind the head is never a reset.
    page = (await client.get("/revocations", params={"since": "0-0", "limit": "1"})).json()
    assert "reset" not in page


async def test_lost_redis_stream_resets_followers(app_settings: Any, request: Any) -> None:
    """Redis restarted without persistence (or the stream deleted): the head is gone, a
    follower's cursor is beyond it, and it re-reads from the start."""
    from tests.fixtures.servers import running_app

    async with running_app(app_settings) as (client, svc):
        claims = await _revoke_one(client)
        _, cursor, _ = await _read_all(client, None)
        if isinstance(svc.store, RedisStore):
            await svc.store.client.delete(FEED_STREAM)
        else:
            assert isinstance(svc.store, MemoryStore)
            svc.store._feeds.pop(FEED_STREAM, None)  # what a restart leaves: nothing
            svc.store._feed_last.pop(FEED_STREAM, None)
        page = (await client.get("/revocations", params={"since": cursor})).json()
        assert page.get("reset") is True and page["revoked"] == []
        later = await _revoke_one(client)
        entries, _, _ = await _read_all(client, page["cursor"])
        assert later["sid"] in {e.get("sid") for e in entries}
        assert claims["sid"] != later["sid"]


# --------------------------------------------------------------------------- live


@pytest.fixture
def port() -> int:
    return free_port()


@pytest.fixture
def restartable(port: int) -> Iterator[list[LiveServer]]:
    """A did-auth server on the in-memory store (its default), restartable on `port`."""
    servers = [start_server(config_dict(), port=port)]
    yield servers
    stop_server(servers[-1])


def _login_and_revoke(server: LiveServer) -> dict[str, Any]:
    token = access_token(server.url)
    revoked = httpx.post(server.url + "/revoke", data={"token": token, "client_id": "dapp"})
    assert revoked.status_code == 200, revoked.text
    return _claims(token)


def _until(condition: Any, what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def test_follower_keeps_seeing_revocations_across_a_restart(
    restartable: list[LiveServer], port: int
) -> None:
    server = restartable[0]
    follower = FeedFollower(server.url, interval=0.2, max_staleness=30)
    follower.start()
    try:
        before = [_login_and_revoke(server) for _ in range(3)]
        _until(lambda: all(follower.is_revoked(c) for c in before), "revocations not followed")
        old_cursor = follower.cursor

        stop_server(server)  # the in-memory feed is gone with the process
        restartable[0] = start_server(config_dict(), port=port)
        after = _login_and_revoke(restartable[0])
        _until(
            lambda: follower.is_current() and follower.is_revoked(after),
            f"the follower (cursor {old_cursor}, now {follower.cursor}) missed a revocation "
            "written after the issuer restarted",
        )
        # Nothing it knew is forgotten (entries are idempotent; revocations are never undone).
        assert all(follower.is_revoked(c) for c in before)
    finally:
        follower.stop()


# --------------------------------------------------------------------------- the verifier


def test_follower_takes_a_reset_page_as_its_new_position() -> None:
    now = time.time()
    pages: list[dict[str, Any]] = [
        {"revoked": [{"jti": "old", "exp": now + 300}], "cursor": "9000-0", "more": False},
        # The issuer restarted: the cursor "9000-0" is beyond its head.
        {"revoked": [{"jti": "a", "exp": now + 300}], "cursor": "10-0", "more": True,
         "reset": True},
        {"revoked": [{"jti": "b", "exp": now + 300}], "cursor": "11-0", "more": False},
        {"revoked": [], "cursor": "11-0", "more": False},
    ]
    asked: list[str] = []

    def fetch(url: str) -> Any:
        asked.append(url)
        return pages.pop(0)

    follower = FeedFollower("http://127.0.0.1:1", fetch=fetch)
    assert follower.poll_once() and follower.cursor == "9000-0"
    assert follower.poll_once() and follower.cursor == "11-0"
    assert asked[1].endswith("since=9000-0") and asked[2].endswith("since=10-0")
    assert all(follower.is_revoked({"jti": j}) for j in ("old", "a", "b"))
    assert follower.resets == 1
    assert follower.poll_once() and asked[3].endswith("since=11-0")


def test_follower_rereads_from_the_start_on_a_bare_reset() -> None:
    """An issuer may answer a reset with no entries and no cursor: the follower then asks
    again from the start (no `since`), in the same poll."""
    now = time.time()
    pages: list[dict[str, Any]] = [
        {"revoked": [], "cursor": "5-0", "more": False},
        {"revoked": [], "cursor": None, "more": True, "reset": True},
        {"revoked": [{"sid": "s", "exp": now + 300}], "cursor": "1-0", "more": False},
    ]
    asked: list[str] = []

    def fetch(url: str) -> Any:
        asked.append(url)
        return pages.pop(0)

    follower = FeedFollower("http://127.0.0.1:1", fetch=fetch)
    assert follower.poll_once()
    assert follower.poll_once() and follower.cursor == "1-0"
    assert "since=" not in asked[2] and follower.is_revoked({"sid": "s"})
