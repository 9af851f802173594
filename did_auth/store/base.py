"""The store contract: a few atomic primitives that Redis and the in-memory store both honour.

Every operation is atomic on its own; compound decisions (consume a nonce, rotate a refresh
token) are single operations here so that two replicas can never both win a race.
Implementations raise `TemporarilyUnavailable` when the backend cannot be reached, so that
callers fail closed.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

__all__ = ["Store", "open_store"]


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

    async def ping(self) -> None:
        """Raise TemporarilyUnavailable when the backend is unreachable."""
        ...

    async def close(self) -> None: ...


def open_store(redis_url: str | None) -> Store:
    """A Redis store for a URL, else the in-memory store (one process only)."""
    if redis_url:
        from did_auth.store.redis import RedisStore

        return RedisStore.from_url(redis_url)
    from did_auth.store.memory import MemoryStore

    return MemoryStore()
