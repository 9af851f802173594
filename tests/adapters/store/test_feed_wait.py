"""`Store.feed_wait`: a blocking wait for the next feed entry (the revocation stream's
wakeup across replicas), on every store (memory, Redis, Redis Cluster, Sentinel)."""

from __future__ import annotations

import asyncio
import time

from did_auth.core.ports.store import Store

STREAM = "da:{feed}:test-wait"


async def test_an_entry_already_there_answers_at_once(store: Store) -> None:
    first = await store.feed_append(STREAM, b"a", keep_for=60)
    second = await store.feed_append(STREAM, b"b", keep_for=60)
    assert await store.feed_wait(STREAM, None, 5.0) == second  # the newest cursor
    assert await store.feed_wait(STREAM, first, 5.0) == second
    started = time.monotonic()
    assert await store.feed_wait(STREAM, second, 0.2) is None  # nothing after the head
    assert time.monotonic() - started < 2.0


async def test_a_waiter_wakes_on_the_next_append(store: Store) -> None:
    head = await store.feed_append(STREAM, b"a", keep_for=60)

    async def wait_long() -> str | None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # Redis answers None at its block cap: ask again
            got = await store.feed_wait(STREAM, head, 5.0)
            if got is not None:
                return got
        return None

    waiter = asyncio.create_task(wait_long())
    await asyncio.sleep(0.1)  # the waiter is blocked
    assert not waiter.done()
    started = time.monotonic()
    newer = await store.feed_append(STREAM, b"b", keep_for=60)
    assert await asyncio.wait_for(waiter, 10) == newer
    assert time.monotonic() - started < 1.0
