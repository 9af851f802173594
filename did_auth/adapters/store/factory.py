"""Choose the store implementation for a configured URL (the adapters' entry point)."""

from __future__ import annotations

from did_auth.core.ports.store import Store

__all__ = ["open_store"]


def open_store(redis_url: str | None) -> Store:
    """A Redis store for a URL, else the in-memory store (one process only).

    `redis://host:port/db` (or `rediss://`): one Redis.
    `redis+sentinel://host:port[,host:port...]/SERVICE[/DB]` (or `rediss+sentinel://`): the
    primary the sentinels name for SERVICE, followed across failovers.
    `redis+cluster://host:port[,host:port...]` (or `rediss+cluster://`): Redis Cluster,
    seeded by the listed nodes; every key carries a hash tag, so each atomic step runs on
    the one node that owns it.
    """
    if redis_url:
        from did_auth.adapters.store.redis import RedisStore

        return RedisStore.from_url(redis_url)
    from did_auth.adapters.store.memory import MemoryStore

    return MemoryStore()
