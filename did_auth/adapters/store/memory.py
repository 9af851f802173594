"""In-memory store: the embedded default (one process). Same contract as the Redis store."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Sequence

from did_auth.core.ports.store import Store

__all__ = ["MemoryStore"]


def _stream_id(cursor: str) -> tuple[int, int] | None:
    ms, _, seq = cursor.partition("-")
    try:
        return int(ms), int(seq or 0)
    except ValueError:
        return None


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


def _ceil_ms(us: int) -> int:
    return -(-us // 1000)


class MemoryStore(Store):
    def __init__(
        self,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._data: dict[str, tuple[bytes, float | None]] = {}
        self._now = monotonic
        self._wall = wall
        self._ops = 0
        # stream -> [(id, appended at (monotonic), entry)], oldest first
        self._feeds: dict[str, list[tuple[tuple[int, int], float, bytes]]] = {}
        # stream -> the last id written (kept when its entries are trimmed, like a Redis
        # stream's last-generated-id)
        self._feed_last: dict[str, tuple[int, int]] = {}
        # Futures of `feed_wait` callers, woken by the next append (each in its own loop).
        self._feed_waiters: list[asyncio.Future[None]] = []

    def _live(self, key: str) -> bytes | None:
        item = self._data.get(key)
        if item is None:
            return None
        value, exp = item
        if exp is not None and exp <= self._now():
            del self._data[key]
            return None
        return value

    def _sweep(self) -> None:
        # Amortised expiry so abandoned keys cannot grow memory without bound.
        self._ops += 1
        if self._ops % 1024:
            return
        now = self._now()
        dead = [k for k, (_, exp) in self._data.items() if exp is not None and exp <= now]
        for k in dead:
            del self._data[k]

    async def put(self, key: str, value: bytes, ttl: float, *, nx: bool = False) -> bool:
        self._sweep()
        if nx and self._live(key) is not None:
            return False
        self._data[key] = (bytes(value), self._now() + ttl)
        return True

    async def get(self, key: str) -> bytes | None:
        return self._live(key)

    async def take(self, key: str, *, expect: bytes | None = None) -> bytes | None:
        value = self._live(key)
        if value is not None and (expect is None or value == expect):
            del self._data[key]
        return value

    async def swap(self, key: str, expect: bytes, value: bytes, ttl: float) -> bool:
        if self._live(key) != expect:
            return False
        self._data[key] = (bytes(value), self._now() + ttl)
        return True

    async def delete(self, *keys: str) -> int:
        n = 0
        for k in keys:
            if self._live(k) is not None:
                del self._data[k]
                n += 1
        return n

    async def incr(self, key: str, ttl: float) -> int:
        self._sweep()
        current = self._live(key)
        if current is None:
            self._data[key] = (b"1", self._now() + ttl)
            return 1
        value = int(current) + 1
        self._data[key] = (str(value).encode(), self._data[key][1])
        return value

    async def ttl(self, key: str) -> float | None:
        if self._live(key) is None:
            return None
        exp = self._data[key][1]
        return None if exp is None else exp - self._now()

    async def members(self, key: str) -> list[str]:
        return list(self._members(key))

    async def feed_append(self, stream: str, entry: bytes, *, keep_for: float) -> str:
        feed = self._feeds.setdefault(stream, [])
        # Ids as Redis stream ids: `<ms>-<seq>` from the wall clock, above the last one even
        # if the clock steps back, so a restarted process (whose counter would start over)
        # writes above every cursor it handed out before and a follower misses nothing.
        ms = int(self._wall() * 1000)
        last_ms, last_seq = self._feed_last.get(stream, (0, -1))
        new_id = (ms, 0) if ms > last_ms else (last_ms, last_seq + 1)
        self._feed_last[stream] = new_id
        cursor = f"{new_id[0]}-{new_id[1]}"
        now = self._now()
        feed.append((new_id, now, entry))
        # Trim by age (like XTRIM MINID): only entries older than `keep_for` go.
        floor = now - keep_for
        old = 0
        while old < len(feed) and feed[old][1] < floor:
            old += 1
        if old:
            del feed[:old]
        waiters, self._feed_waiters = self._feed_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.get_loop().call_soon_threadsafe(_wake, waiter)
        return cursor

    async def feed_read(
        self, stream: str, after: str | None, count: int
    ) -> list[tuple[str, bytes]]:
        feed = self._feeds.get(stream, [])
        floor = (-1, -1) if after is None else _stream_id(after)
        if floor is None:
            return []
        return [(f"{i[0]}-{i[1]}", e) for i, _, e in feed if i > floor][:count]

    async def feed_head(self, stream: str) -> str | None:
        last = self._feed_last.get(stream)
        return None if last is None else f"{last[0]}-{last[1]}"

    async def feed_wait(self, stream: str, after: str | None, timeout: float) -> str | None:
        floor = (-1, -1) if after is None else _stream_id(after)
        deadline = self._now() + max(0.0, timeout)
        while True:
            last = self._feed_last.get(stream)
            if last is not None and floor is not None and last > floor:
                return f"{last[0]}-{last[1]}"
            left = deadline - self._now()
            if left <= 0:
                return None
            waiter = asyncio.get_running_loop().create_future()
            self._feed_waiters.append(waiter)
            try:
                await asyncio.wait_for(waiter, left)
            except TimeoutError:
                return None
            finally:
                if waiter in self._feed_waiters:
                    self._feed_waiters.remove(waiter)

    async def publish(self, channel: str, message: bytes) -> None:
        return None

    async def ping(self) -> None:
        return None

    # -- GCRA and bounded sets: the same maths as the Redis Lua scripts, on the monotonic clock.

    async def gcra_many(
        self, buckets: Sequence[tuple[str, int, int, int]]
    ) -> list[tuple[int, int, int, int]]:
        self._sweep()
        now = int(self._now() * 1_000_000)  # whole microseconds, as in the Lua script
        tats: dict[str, int] = {}  # TATs after the buckets seen so far (a key may repeat)
        before: list[int] = []
        out: list[tuple[int, int, int, int]] = []
        for key, period_ms, limit, cost in buckets:
            emission = -(-period_ms * 1000 // limit)  # ceil to a whole microsecond
            burst = emission * limit
            raw = self._live(key)
            tat = tats.get(key, int(raw) if raw is not None else now)
            tat = max(tat, now)
            before.append(tat)
            new_tat = tat + emission * cost
            diff = now - (new_tat - burst)
            if diff < 0:
                retry = -1 if emission * cost > burst else _ceil_ms(-diff)
                remaining = max(0, (now - tat + burst) // emission)
                out.append((0, remaining, retry, _ceil_ms(tat - now)))
            else:
                out.append((1, diff // emission, 0, _ceil_ms(new_tat - now)))
                tats[key] = new_tat
        if any(r[0] == 0 for r in out):
            # Nothing is charged; report the unchanged state of the buckets that would admit.
            return [
                (1, r[1] + b[3], 0, _ceil_ms(tat - now)) if r[0] else r
                for r, b, tat in zip(out, buckets, before, strict=True)
            ]
        for key, tat in tats.items():
            if tat > now:
                self._data[key] = (str(tat).encode(), self._now() + (tat - now) / 1_000_000)
        return out

    def _members(self, key: str) -> dict[str, float]:
        raw = self._live(key)
        if raw is None:
            return {}
        now = self._now()
        members: dict[str, float] = json.loads(raw)
        return {m: exp for m, exp in members.items() if exp > now}

    async def cap_add(self, key: str, member: str, cap: int, ttl: float) -> bool:
        self._sweep()
        members = self._members(key)
        if member not in members and len(members) >= cap:
            return False
        exp = self._now() + ttl
        members[member] = exp
        self._data[key] = (json.dumps(members).encode(), max(members.values()))
        return True

    async def cap_remove(self, key: str, member: str) -> bool:
        members = self._members(key)
        if members.pop(member, None) is None:
            return False
        if members:
            self._data[key] = (json.dumps(members).encode(), max(members.values()))
        else:
            del self._data[key]
        return True

    async def close(self) -> None:
        return None

    def __len__(self) -> int:
        return len(self._data)
