"""In-memory store: the embedded default (one process). Same contract as the Redis store."""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["MemoryStore"]


class MemoryStore:
    def __init__(self, *, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._data: dict[str, tuple[bytes, float | None]] = {}
        self._now = monotonic
        self._ops = 0

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

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        return None

    def __len__(self) -> int:
        return len(self._data)
