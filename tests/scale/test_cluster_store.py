"""Redis Cluster specifics of the store: the URL, and all-or-nothing GCRA across hash slots
(grouped by slot, charged in order, given back on a denial) staying exact per bucket."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from did_auth.adapters.store.factory import open_store
from did_auth.adapters.store.redis import RedisStore, parse_cluster_url
from did_auth.core.errors import TemporarilyUnavailable
from did_auth.core.policy.ratelimit import Rate, RateLimiter, check_all
from tests.fixtures.redis_cluster import RedisCluster
from tests.fixtures.redis_server import free_port


def test_cluster_url_forms() -> None:
    assert parse_cluster_url("redis+cluster://10.0.0.1:7000") == ([("10.0.0.1", 7000)], {})
    nodes, opts = parse_cluster_url(
        "rediss+cluster://app:s%40cret@a.example:7000,b.example:7001,[::1]:7002/0"
        "?socket_keepalive=true"
    )
    assert nodes == [("a.example", 7000), ("b.example", 7001), ("::1", 7002)]
    assert opts["username"] == "app" and opts["password"] == "s@cret"
    assert opts["ssl"] is True and opts["socket_keepalive"] is True
    for bad in ("redis://h:1", "redis+cluster://h", "redis+cluster://h:x",
                "redis+cluster://h:1/3"):
        with pytest.raises(ValueError):
            parse_cluster_url(bad)


async def test_open_store_picks_the_cluster_client(redis_cluster: RedisCluster) -> None:
    store = open_store(redis_cluster.url)
    assert isinstance(store, RedisStore) and store.cluster
    await store.ping()
    await store.close()


async def test_unreachable_cluster_fails_closed() -> None:
    store = RedisStore.from_url(f"redis+cluster://127.0.0.1:{free_port()}", timeout=0.5)
    with pytest.raises(TemporarilyUnavailable):
        await store.put("da:{x}", b"1", 10)
    with pytest.raises(TemporarilyUnavailable):
        await store.gcra_many([("da:{rl:a}", 1000, 1, 1), ("da:{rl:b}", 1000, 1, 1)])
    await store.close()


@pytest.fixture
async def cluster_store(redis_cluster: RedisCluster) -> AsyncIterator[RedisStore]:
    store = RedisStore.from_url(redis_cluster.url)
    await store.client.flushdb()
    yield store
    await store.close()


def _slots(store: RedisStore, *keys: str) -> set[int]:
    return {store.slot(f"da:{{rl:{k}}}") for k in keys}


async def test_three_slots_denied_in_the_middle_charge_nothing(cluster_store: RedisStore) -> None:
    limiter = RateLimiter(cluster_store)
    a, b, c = Rate(10, 3600.0, "a"), Rate(1, 3600.0, "b"), Rate(10, 3600.0, "c")
    buckets = [("ka", a), ("kb", b), ("kc", c)]
    assert len(_slots(cluster_store, "ka", "kb", "kc")) == 3
    first = await limiter.hit_all(buckets)
    assert [d.allowed for d in first] == [True, True, True]
    assert [d.remaining for d in first] == [9, 0, 9]
    # kb is empty now: ka was charged first and is given back; kc is only decided (dry run)
    second = await limiter.hit_all(buckets)
    assert [d.allowed for d in second] == [True, False, True]
    assert [d.remaining for d in second] == [9, 0, 9]  # unchanged state, as on one node
    assert 3599 < second[1].retry_after <= 3600
    assert (await limiter.peek("ka", a)).remaining == 9
    assert (await limiter.peek("kc", c)).remaining == 9


async def test_concurrent_cross_slot_calls_never_over_admit(
    cluster_store: RedisStore, redis_cluster: RedisCluster
) -> None:
    # Two clients stand for two replicas. The broad bucket is charged first and the narrow
    # one denies most calls, so most calls hold and then give back a unit of the broad one.
    other = RedisStore.from_url(redis_cluster.url)
    limiters = [RateLimiter(cluster_store), RateLimiter(other)]
    broad, narrow = Rate(100, 3600.0, "broad"), Rate(20, 3600.0, "narrow")
    assert len(_slots(cluster_store, "broad", "narrow")) == 2
    results = await asyncio.gather(*[
        check_all(limiters[i % 2], [("broad", broad), ("narrow", narrow)]) for i in range(80)
    ])
    await other.close()
    assert sum(d.allowed for d in results) == 20
    # exactly the 20 admitted calls stay charged to the broad bucket
    assert (await limiters[0].peek("broad", broad)).remaining == 80
    assert (await limiters[0].peek("narrow", narrow)).remaining == 0
