"""GCRA rate limiting: the same tests against the in-memory store and a real Redis."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

from did_auth.adapters.store.memory import MemoryStore
from did_auth.adapters.store.redis import RedisStore
from did_auth.config.settings import RateLimits
from did_auth.core.errors import RateLimited, TemporarilyUnavailable
from did_auth.core.policy.ratelimit import (
    Decision,
    Rate,
    RateLimiter,
    RateLimitExceeded,
    check_all,
    client_ip_key,
    enforce,
    parse_rate,
    ratelimit_headers,
    rates_from_config,
)
from did_auth.core.ports.store import Store
from tests.fixtures.redis_server import RedisServer, free_port, started_redis_server
from tests.waits import wait_until_async

# `store` (memory, Redis, Redis Cluster) comes from tests/fixtures/stores.py.


@pytest.fixture
def limiter(store: Store) -> RateLimiter:
    return RateLimiter(store)


# -- GCRA --------------------------------------------------------------------------------


async def test_burst_admits_exactly_the_limit(limiter: RateLimiter) -> None:
    rate = Rate(10, 60.0, "verify_per_ip")
    decisions = [await limiter.hit("verify:ip:198.51.100.1", rate) for _ in range(12)]
    assert [d.allowed for d in decisions] == [True] * 10 + [False] * 2
    assert [d.remaining for d in decisions[:10]] == list(range(9, -1, -1))
    assert all(d.limit == 10 and d.policy == "verify_per_ip" for d in decisions)
    denied = decisions[10]
    assert denied.remaining == 0
    # One unit comes back every 60/10 = 6 s (minus the time the burst itself took).
    assert 5.0 < denied.retry_after <= 6.0
    assert 59.0 < denied.reset_after <= 60.0
    # Another key has its own bucket.
    assert (await limiter.hit("verify:ip:198.51.100.2", rate)).allowed


async def test_refills_at_the_rate(limiter: RateLimiter) -> None:
    rate = Rate(4, 2.0)  # one unit every 500 ms
    assert all([(await limiter.hit("k", rate)).allowed for _ in range(4)])
    denied = await limiter.hit("k", rate)
    assert not denied.allowed
    # Half-way to the second unit: exactly two units have come back (margin 250 ms).
    await asyncio.sleep(denied.retry_after + 0.75)
    after = [(await limiter.hit("k", rate)).allowed for _ in range(3)]
    assert after == [True, True, False]


async def test_retry_after_is_when_a_unit_returns(limiter: RateLimiter) -> None:
    rate = Rate(4, 2.0)  # one unit every 500 ms
    for _ in range(4):
        assert (await limiter.hit("r", rate)).allowed
    denied = await limiter.hit("r", rate)
    assert not denied.allowed
    assert 0.2 < denied.retry_after <= 0.5
    assert denied.retry_after_s == 1
    early = await limiter.hit("r", rate)
    assert not early.allowed and early.retry_after <= denied.retry_after
    await asyncio.sleep(denied.retry_after + 0.02)
    ok = await limiter.hit("r", rate)
    assert ok.allowed and ok.remaining == 0
    again = await limiter.hit("r", rate)
    assert not again.allowed and 0.2 < again.retry_after <= 0.5


async def test_cost_and_peek(limiter: RateLimiter) -> None:
    rate = Rate(10, 60.0)
    d = await limiter.hit("c", rate, cost=4)
    assert d.allowed and d.remaining == 6
    peek = await limiter.peek("c", rate)
    assert peek.allowed and peek.remaining == 6
    assert (await limiter.peek("c", rate)).remaining == 6  # peeking charges nothing
    big = await limiter.hit("c", rate, cost=7)  # does not fit: nothing charged
    assert not big.allowed and big.remaining == 6
    assert 5.0 < big.retry_after <= 6.0  # one more unit is missing
    short = await limiter.peek("c", rate, cost=8)
    assert not short.allowed and 11.0 < short.retry_after <= 12.0
    assert (await limiter.hit("c", rate, cost=6)).remaining == 0
    with pytest.raises(ValueError):
        await limiter.hit("c", rate, cost=11)


async def test_state_key_expires_when_bucket_is_full(store: Store, limiter: RateLimiter) -> None:
    rate = Rate(2, 0.2)
    await limiter.hit("exp", rate)
    ttl = await store.ttl("da:{rl:exp}")
    assert ttl is not None and 0 < ttl <= 0.2

    async def gone() -> bool:
        return await store.get("da:{rl:exp}") is None

    await wait_until_async(gone, 5, what="the full bucket's state to expire")


async def test_store_gcra_raw_contract(store: Store) -> None:
    assert await store.gcra("raw", 60_000, 3, 1) == (1, 2, 0, 20_000)
    allowed, remaining, retry_ms, reset_ms = await store.gcra("raw", 60_000, 3, 3)
    assert (allowed, remaining) == (0, 2)
    assert 19_000 <= retry_ms <= 20_000 and 19_000 <= reset_ms <= 20_000
    assert (await store.gcra("raw", 60_000, 3, 4))[2] == -1  # can never fit
    assert (await store.gcra("raw", 60_000, 3, 0))[:3] == (1, 2, 0)  # peek


async def test_non_divisible_period_is_exact(store: Store) -> None:
    # 7 per minute: the emission interval is rounded to a whole microsecond, no float drift.
    results = [await store.gcra("seven", 60_000, 7, 1) for _ in range(8)]
    assert [r[0] for r in results] == [1] * 7 + [0]
    assert [r[1] for r in results[:7]] == [6, 5, 4, 3, 2, 1, 0]


async def test_200_concurrent_hits_against_50_admit_exactly_50(
    store: Store, request: pytest.FixtureRequest
) -> None:
    # One unit refills every 72 s: the burst cannot earn a 51st admission by taking long
    # (with 50 a minute, a burst slower than 1.2 s on a loaded machine rightly admits 51).
    rate = Rate(50, 3600.0)
    stores: list[Store] = [store]
    if isinstance(store, RedisStore):
        # A second client stands for a second replica sharing the same Redis (or cluster).
        stores.append(RedisStore.from_url(store.url))
    limiters = [RateLimiter(s) for s in stores]
    decisions = await asyncio.gather(
        *[limiters[i % len(limiters)].hit("race", rate) for i in range(200)]
    )
    assert sum(d.allowed for d in decisions) == 50
    assert sorted(d.remaining for d in decisions if d.allowed) == list(range(50))
    for s in stores[1:]:
        await s.close()


async def test_check_all_charges_all_or_nothing(limiter: RateLimiter) -> None:
    ip, sub = Rate(5, 60.0, "verify_per_ip"), Rate(2, 60.0, "verify_per_subject")
    buckets = [("verify:ip:198.51.100.9", ip), ("verify:sub:0xabc", sub)]
    first = await check_all(limiter, buckets)
    assert first.allowed and first.policy == "verify_per_subject" and first.remaining == 1
    assert (await check_all(limiter, buckets)).allowed
    denied = await check_all(limiter, buckets)
    assert not denied.allowed and denied.policy == "verify_per_subject"
    assert 28.0 < denied.retry_after <= 30.0
    # The IP bucket was not charged by the denied attempt: 5 - 2 = 3 left.
    assert (await limiter.peek("verify:ip:198.51.100.9", ip)).remaining == 3
    decisions = await limiter.hit_all(buckets)
    assert [d.allowed for d in decisions] == [True, False]
    assert decisions[0].remaining == 3  # reported unchanged, because not charged


async def test_check_all_concurrent_never_over_admits(limiter: RateLimiter) -> None:
    ip, sub = Rate(30, 60.0, "ip"), Rate(10, 60.0, "sub")
    results = await asyncio.gather(
        *[
            check_all(limiter, [("ip:1", ip), (f"sub:{i % 2}", sub)])
            for i in range(100)
        ]
    )
    assert sum(d.allowed for d in results) == 20  # 10 per subject, within the IP's 30
    assert (await limiter.peek("ip:1", ip)).remaining == 10


async def test_same_key_twice_in_one_call(limiter: RateLimiter) -> None:
    rate = Rate(3, 60.0)
    ds = await limiter.hit_all([("dup", rate), ("dup", rate)])
    assert [d.remaining for d in ds] == [2, 1]
    ds = await limiter.hit_all([("dup", rate), ("dup", rate)])
    assert [d.allowed for d in ds] == [True, False]
    assert (await limiter.peek("dup", rate)).remaining == 1


# -- bounded sets of outstanding nonces ---------------------------------------------------


async def test_cap_add_caps_and_expires(store: Store) -> None:
    key = "da:{cap:demo:198.51.100.1}"
    assert await store.cap_add(key, "n1", 3, 0.3)
    assert await store.cap_add(key, "n2", 3, 0.3)
    assert await store.cap_add(key, "n3", 3, 0.3)
    assert not await store.cap_add(key, "n4", 3, 0.3)
    assert await store.cap_add(key, "n1", 3, 0.3)  # already outstanding: refreshed
    assert await store.cap_remove(key, "n2")
    assert not await store.cap_remove(key, "n2")
    assert await store.cap_add(key, "n4", 3, 0.3)
    assert not await store.cap_add(key, "n5", 3, 0.3)

    async def set_expired() -> bool:
        return await store.ttl(key) is None

    # the whole set expires with its last member
    await wait_until_async(set_expired, 5, what="the capped set to expire")
    for m in ("a", "b", "c"):
        assert await store.cap_add(key, m, 3, 10)
    assert not await store.cap_add(key, "d", 3, 10)


async def test_cap_add_members_expire_one_by_one(store: Store) -> None:
    key = "da:{cap:x}"
    assert await store.cap_add(key, "old", 2, 0.2)
    assert await store.cap_add(key, "new", 2, 5)
    assert not await store.cap_add(key, "third", 2, 5)
    # a refused cap_add changes nothing: poll until "old" has expired and "third" fits
    await wait_until_async(lambda: store.cap_add(key, "third", 2, 5), 5,
                           what="the old member to expire")
    ttl = await store.ttl(key)
    assert ttl is not None and 4 < ttl <= 5


async def test_cap_add_concurrent_is_exact(store: Store) -> None:
    results = await asyncio.gather(
        *[store.cap_add("da:{cap:flood}", f"n{i}", 20, 10) for i in range(100)]
    )
    assert sum(results) == 20


# -- headers -------------------------------------------------------------------------------


def test_headers_for_an_admitted_request() -> None:
    d = Decision(True, 30, 12, 17.2, 0.0, "verify_per_ip", window=60.0)
    assert ratelimit_headers(d) == {
        "RateLimit-Policy": '"verify_per_ip";q=30;w=60',
        "RateLimit": '"verify_per_ip";r=12;t=18',
    }


def test_headers_for_a_denial_carry_retry_after() -> None:
    d = Decision(False, 30, 0, 60.0, 0.3, "verify_per_ip", window=60.0)
    h = ratelimit_headers(d, name='we"ird\\')
    assert h["Retry-After"] == "1"  # integer seconds, at least 1
    assert h["RateLimit-Policy"] == '"we\\"ird\\\\";q=30;w=60'
    # The effective window ends when the client may retry (draft §6: Retry-After is never
    # earlier than the end of the effective window).
    assert h["RateLimit"] == '"we\\"ird\\\\";r=0;t=1'
    d = Decision(False, 30, 0, 60.0, 2.01, "p", window=60.0)
    assert ratelimit_headers(d)["Retry-After"] == "3"
    with pytest.raises(ValueError):
        ratelimit_headers(d, name="no\nnewlines")


async def test_enforce_raises_429_with_headers(limiter: RateLimiter) -> None:
    rate = parse_rate("1/h", "nonce_per_ip")
    enforce(await limiter.hit("nonce:ip:1", rate))
    with pytest.raises(RateLimitExceeded) as info:
        enforce(await limiter.hit("nonce:ip:1", rate))
    exc = info.value
    assert isinstance(exc, RateLimited) and exc.status == 429 and exc.code == "slow_down"
    assert 3599 <= exc.retry_after <= 3600
    assert exc.headers["Retry-After"] == str(exc.retry_after)
    assert exc.headers["RateLimit-Policy"] == '"nonce_per_ip";q=1;w=3600'
    assert exc.to_dict()["error"] == "slow_down"


def test_parse_rate_and_config() -> None:
    assert parse_rate("30/m") == Rate(30, 60.0)
    assert parse_rate("5/s", "x").policy == "x"
    assert str(parse_rate("600/h")) == "600/h"
    assert parse_rate("60/m").period_ms == 60_000
    assert parse_rate("100/d").period == 86400
    for bad in ("0/m", "30/w", "m/30", "-1/s", "", "3.5/s"):
        with pytest.raises(ValueError):
            parse_rate(bad)
    rates = rates_from_config(RateLimits().model_dump())
    assert rates["verify_per_ip"] == Rate(30, 60.0, "verify_per_ip")
    assert rates["nonce_per_ip"].limit == 60
    assert all(isinstance(r, Rate) for r in rates.values())


def test_client_ip_key() -> None:
    assert client_ip_key("203.0.113.7") == "203.0.113.7"
    assert client_ip_key("2001:db8:1:2:3:4:5:6") == "2001:db8:1:2::/64"
    assert client_ip_key("2001:db8:1:2:ffff::1") == "2001:db8:1:2::/64"
    assert client_ip_key("::ffff:198.51.100.3") == "198.51.100.3"
    assert client_ip_key("not-an-ip") == "not-an-ip"


# -- the in-memory store's clock -----------------------------------------------------------


async def test_memory_store_uses_its_own_monotonic_clock() -> None:
    now = [1000.0]
    limiter = RateLimiter(MemoryStore(monotonic=lambda: now[0]))
    rate = Rate(7, 60.0)
    assert all([(await limiter.hit("m", rate)).allowed for _ in range(7)])
    denied = await limiter.hit("m", rate)
    assert not denied.allowed and denied.retry_after == pytest.approx(60 / 7, abs=1e-3)
    now[0] += 60 / 7 - 0.001
    assert not (await limiter.hit("m", rate)).allowed
    now[0] += 0.002
    assert (await limiter.hit("m", rate)).allowed
    now[0] += 3600
    assert (await limiter.peek("m", rate)).remaining == 7


# -- Redis down: fail closed, then recover -----------------------------------------------


async def test_redis_down_fails_closed() -> None:
    s = RedisStore.from_url(f"redis://127.0.0.1:{free_port()}/0", timeout=0.5)
    limiter = RateLimiter(s)
    with pytest.raises(TemporarilyUnavailable):
        await limiter.hit("k", Rate(5, 60.0))
    with pytest.raises(TemporarilyUnavailable):
        await check_all(limiter, [("a", Rate(5, 60.0)), ("b", Rate(5, 60.0))])
    with pytest.raises(TemporarilyUnavailable):
        await s.gcra("k", 1000, 1, 1)
    with pytest.raises(TemporarilyUnavailable):
        await s.cap_add("k", "m", 1, 1)
    with pytest.raises(TemporarilyUnavailable):
        await s.cap_remove("k", "m")
    await s.close()


@pytest.fixture
def own_redis_server() -> Iterator[RedisServer]:
    """A redis-server of this test's own: restarting the session's would wipe the state of
    servers other tests started on it."""
    with started_redis_server() as server:
        yield server


async def test_redis_restart_recovers_and_reloads_scripts(own_redis_server: RedisServer) -> None:
    redis_server = own_redis_server
    s = RedisStore.from_url(redis_server.url, timeout=0.5)
    limiter = RateLimiter(s)
    rate = Rate(100, 60.0)
    assert (await limiter.hit("restart", rate)).allowed  # script cached by SHA
    redis_server.stop()
    try:
        with pytest.raises(TemporarilyUnavailable):
            await limiter.hit("restart", rate)
    finally:
        redis_server.start()
    deadline = time.monotonic() + 5
    while True:
        try:
            d = await limiter.hit("restart", rate)
            break
        except TemporarilyUnavailable:
            assert time.monotonic() < deadline, "did not recover within 5 s"
            await asyncio.sleep(0.1)
    # The restarted Redis forgot both the script cache and the bucket: NOSCRIPT was handled.
    assert d.allowed and d.remaining == 99
    assert await s.cap_add("da:{cap:r}", "m", 1, 5)
    await s.close()
