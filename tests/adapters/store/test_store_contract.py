"""One contract, two stores: the in-memory store and a real Redis behave the same."""

from __future__ import annotations

import asyncio

import pytest

from did_auth.adapters.store.redis import RedisStore
from did_auth.core.errors import TemporarilyUnavailable
from did_auth.core.ports.store import Store
from tests.fixtures.redis_server import free_port
from tests.waits import wait_until_async

# `store` (memory, Redis, Redis Cluster) comes from tests/fixtures/stores.py.


async def test_put_get_and_nx(store: Store) -> None:
    assert await store.put("k", b"v", 10)
    assert await store.get("k") == b"v"
    assert not await store.put("k", b"w", 10, nx=True)
    assert await store.get("k") == b"v"
    assert await store.put("k", b"w", 10)
    assert await store.get("k") == b"w"
    assert await store.get("missing") is None


async def test_ttl_expires(store: Store) -> None:
    await store.put("short", b"1", 0.15)
    ttl = await store.ttl("short")
    assert ttl is not None and 0 < ttl <= 0.15

    async def expired() -> bool:
        return await store.get("short") is None

    await wait_until_async(expired, 5, what="the key to expire")
    assert await store.ttl("short") is None
    assert await store.put("short", b"2", 10, nx=True)


async def test_take_is_single_use(store: Store) -> None:
    await store.put("n", b"client", 10)
    assert await store.take("n") == b"client"
    assert await store.take("n") is None


async def test_take_with_expect_leaves_mismatch_untouched(store: Store) -> None:
    await store.put("n", b"client-a", 10)
    assert await store.take("n", expect=b"client-b") == b"client-a"
    assert await store.get("n") == b"client-a"
    assert await store.take("n", expect=b"client-a") == b"client-a"
    assert await store.get("n") is None
    assert await store.take("n", expect=b"client-a") is None


async def test_concurrent_take_exactly_one_wins(store: Store) -> None:
    await store.put("race", b"x", 10)
    results = await asyncio.gather(*[store.take("race", expect=b"x") for _ in range(50)])
    # Exactly one caller sees the value (and deletes it); all the others see it gone.
    assert sum(r == b"x" for r in results) == 1
    assert await store.get("race") is None
    await store.put("race2", b"x", 10)
    plain = await asyncio.gather(*[store.take("race2") for _ in range(50)])
    assert sum(r == b"x" for r in plain) == 1


async def test_swap_compare_and_set(store: Store) -> None:
    await store.put("s", b"v1", 10)
    assert not await store.swap("s", b"other", b"v2", 10)
    assert await store.get("s") == b"v1"
    assert await store.swap("s", b"v1", b"v2", 10)
    assert await store.get("s") == b"v2"
    assert not await store.swap("absent", b"v1", b"v2", 10)


async def test_concurrent_swap_exactly_one_wins(store: Store) -> None:
    await store.put("cas", b"0", 10)
    results = await asyncio.gather(*[store.swap("cas", b"0", str(i).encode(), 10) for i in range(1, 51)])
    assert sum(results) == 1


async def test_incr_and_delete(store: Store) -> None:
    assert await store.incr("c", 10) == 1
    assert await store.incr("c", 10) == 2
    ttl = await store.ttl("c")
    assert ttl is not None and ttl > 5
    assert await store.delete("c", "nope") == 1
    assert await store.get("c") is None
    assert await store.delete() == 0


async def test_redis_down_fails_closed() -> None:
    s = RedisStore.from_url(f"redis://127.0.0.1:{free_port()}/0", timeout=0.5)
    with pytest.raises(TemporarilyUnavailable):
        await s.put("k", b"v", 10)
    with pytest.raises(TemporarilyUnavailable):
        await s.take("k", expect=b"v")
    with pytest.raises(TemporarilyUnavailable):
        await s.ping()
    await s.close()


async def test_members_of_an_index_expire(store: Store) -> None:
    assert await store.cap_add("idx", "a", 1000, 10)
    assert await store.cap_add("idx", "b", 1000, 0.15)
    assert sorted(await store.members("idx")) == ["a", "b"]

    async def b_expired() -> bool:
        return await store.members("idx") == ["a"]

    await wait_until_async(b_expired, 5, what="member b to expire")
    assert await store.members("nothing") == []


async def test_feed_is_ordered_and_resumable(store: Store) -> None:
    stream = f"feed-{id(store)}"
    c1 = await store.feed_append(stream, b"one", keep_for=100)
    c2 = await store.feed_append(stream, b"two", keep_for=100)
    c3 = await store.feed_append(stream, b"three", keep_for=100)
    assert [e for _, e in await store.feed_read(stream, None, 10)] == [b"one", b"two", b"three"]
    assert [e for _, e in await store.feed_read(stream, c1, 10)] == [b"two", b"three"]
    assert await store.feed_read(stream, c3, 10) == []
    assert [c for c, _ in await store.feed_read(stream, None, 2)] == [c1, c2]
    await store.publish("chan", b"x")
