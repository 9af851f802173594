"""The store contract: a few atomic primitives that Redis and the in-memory store both honour.

Every operation is atomic on its own; compound decisions (consume a nonce, rotate a refresh
token) are single operations here so that two replicas can never both win a race.
Implementations raise `TemporarilyUnavailable` when the backend cannot be reached, so that
callers fail closed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

__all__ = ["Store"]


@runtime_checkable
class Store(Protocol):
    async def put(self, key: str, value: bytes, ttl: float, *, nx: bool = False) -> bool:
        """Set `key` with a TTL in seconds. With `nx`, only if absent; True when written."""
        ...

    async def get(self, key: str) -> bytes | None: ...

    async def take(self, key: str, *, expect: bytes | None = None) -> bytes | None:
        """Atomically read and delete `key` (GETDEL) and return the old value.

        With `expect`, the key is deleted only when its value equals `expect`; the stored value
        (or None) is returned either way, so a caller can tell 'missing' from 'mismatch'
        without changing state on a mismatch.
        """
        ...

    async def swap(self, key: str, expect: bytes, value: bytes, ttl: float) -> bool:
        """Compare-and-set: replace the value only if it still equals `expect`."""
        ...

    async def delete(self, *keys: str) -> int: ...

    async def incr(self, key: str, ttl: float) -> int:
        """Increment a counter, setting its TTL when it is created; returns the new value."""
        ...

    async def ttl(self, key: str) -> float | None:
        """Seconds left, or None if the key is missing or has no TTL."""
        ...

    async def members(self, key: str) -> list[str]:
        """The unexpired members of a set built with `cap_add` (an index with a TTL each)."""
        ...

    async def feed_append(self, stream: str, entry: bytes, *, keep_for: float) -> str:
        """Append to an ordered feed (Redis stream); returns the entry's cursor.

        Trimming is by age, never by count: entries appended more than `keep_for` seconds
        ago (by the store's own clock) may be dropped, younger ones never are (Redis: XTRIM
        MINID ~, which may keep a little more). Cursors are `<ms>-<seq>` stream ids.
        """
        ...

    async def feed_read(
        self, stream: str, after: str | None, count: int
    ) -> list[tuple[str, bytes]]:
        """Entries strictly after cursor `after` (all from the start when None), oldest first."""
        ...

    async def feed_head(self, stream: str) -> str | None:
        """The id of the last entry ever appended (trimmed or not: Redis's last-generated-id),
        None when the stream does not exist (never written, or lost with a restart)."""
        ...

    async def feed_wait(self, stream: str, after: str | None, timeout: float) -> str | None:
        """Wait (at most `timeout` seconds) until the feed has an entry after cursor `after`
        (after its start when None) and return the newest entry's cursor; None when nothing
        came in time (Redis may answer None sooner: one blocking read is kept under the
        socket timeout; callers loop). Lossless: an entry appended before the call is seen
        at once. Redis:
        XREAD BLOCK on a connection of its own (never the shared multiplexed one), so other
        replicas' appends wake this process too; in memory: the appends of this process."""
        ...

    async def publish(self, channel: str, message: bytes) -> None:
        """Fire-and-forget notification to subscribers (Redis pub/sub); no-op in memory."""
        ...

    async def ping(self) -> None:
        """Raise TemporarilyUnavailable when the backend is unreachable."""
        ...

    async def gcra(
        self, key: str, period_ms: int, limit: int, cost: int
    ) -> tuple[int, int, int, int]:
        """One atomic GCRA (generic cell rate algorithm) decision for the bucket `key`.

        The bucket admits `limit` units per `period_ms`, all of them as one burst. The state is
        a single theoretical arrival time (TAT) stored under `key` with a TTL that ends when
        the bucket is full again. The clock is the store's own (Redis `TIME`; a monotonic
        clock in memory), never the caller's, so replicas with skewed clocks agree. The
        emission interval is rounded up to a whole microsecond, so all arithmetic is exact.

        `cost` units are charged only when all of them fit; `cost == 0` peeks without writing.
        Returns `(allowed 0/1, remaining, retry_after_ms, reset_after_ms)`: units still
        available after this decision, the wait until `cost` units would fit (0 when
        allowed, -1 when `cost > limit` can never fit), and the wait until the bucket is full.
        Stores that subclass `Store` inherit this: one bucket of `gcra_many`.
        """
        return (await self.gcra_many([(key, period_ms, limit, cost)]))[0]

    async def gcra_many(
        self, buckets: Sequence[tuple[str, int, int, int]]
    ) -> list[tuple[int, int, int, int]]:
        """GCRA over several `(key, period_ms, limit, cost)` buckets, all or nothing.

        One atomic step and one clock reading: every bucket is charged when every bucket
        admits, and none is charged when any denies. Results come back in input order, as
        from `gcra`; for a bucket that would admit but was not charged because another one
        denied, `remaining`/`reset_after_ms` describe its unchanged state. (Redis: one Lua
        script over all keys. Redis Cluster: one script per hash slot, charged in order and
        given back when a later slot denies; exact per bucket, see `RedisStore`.)
        """
        ...

    async def cap_add(self, key: str, member: str, cap: int, ttl: float) -> bool:
        """Add `member` to the bounded set `key` for `ttl` seconds, unless `cap` live members
        are already there.

        Members expire one by one (Redis: a sorted set scored by expiry, expired members
        purged on every call, clock = Redis `TIME`); the set itself expires with its last
        member. Re-adding a live member refreshes its expiry and returns True. Used to cap
        outstanding nonces/challenges per client and IP so that flooding cannot exhaust memory.
        """
        ...

    async def cap_remove(self, key: str, member: str) -> bool:
        """Remove `member` from the bounded set `key` (e.g. a nonce that was consumed)."""
        ...

    async def close(self) -> None: ...
