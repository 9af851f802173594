"""DPoP proofs single use across gate replicas (RFC 9449 §11.1) through Redis.

`DPoPVerifier` consumes a proof's `jti` through the synchronous `ReplayCache` protocol, last,
once every other check of the proof has passed. The gate answers on an event loop that must
not block on a Redis round trip, so the consumption is split in two:

* `DeferredReplayCache` is the verifier's replay cache: a bounded in-memory cache (a proof
  replayed at the same replica is refused at once, Redis or not) that also records the key
  in the `pending` list of the check in progress;
* after `TokenVerifier.verify` has returned, the gate awaits `RedisReplay.add_if_absent` for
  each recorded key (`SET key 1 NX PX ttl`, atomic on the Redis server): only the first
  replica to set it accepts the proof. A Redis error fails closed (503).

Without `redis_url` the gate gives the verifier an `InMemoryReplayCache` (one replica).
`redis.asyncio` (extra `redis`) is imported only when a `RedisReplay` is made.
"""

from __future__ import annotations

import contextvars
from typing import Any

from did_auth_verifier.dpop import InMemoryReplayCache
from did_auth_verifier.errors import TemporarilyUnavailable

__all__ = ["PENDING", "DeferredReplayCache", "RedisReplay"]

PENDING: contextvars.ContextVar[list[tuple[str, float]]] = contextvars.ContextVar(
    "did_auth_gate_pending_replay_keys"
)
KEY_PREFIX = "da:gate:"


class DeferredReplayCache:
    """In-memory first, then recorded for the shared check (see the module docstring)."""

    def __init__(self, local: InMemoryReplayCache) -> None:
        self._local = local

    def __len__(self) -> int:
        return len(self._local)

    def add_if_absent(self, key: str, ttl: float) -> bool:
        pending = PENDING.get(None)
        if pending is None:
            # Only the gate's check, which collects the keys, may consume proofs here.
            raise TemporarilyUnavailable("DPoP replay check not set up", reason="replay_setup")
        if not self._local.add_if_absent(key, ttl):
            return False
        pending.append((key, ttl))
        return True


class RedisReplay:
    """`SET da:gate:<key> 1 NX PX <ttl>` on a Redis shared by every gate replica."""

    def __init__(self, url: str) -> None:
        import redis.asyncio as aioredis

        self._client: Any = aioredis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0)

    async def add_if_absent(self, key: str, ttl: float) -> bool:
        try:
            stored = await self._client.set(
                KEY_PREFIX + key, b"1", nx=True, px=max(1000, int(ttl * 1000))
            )
        except Exception as exc:  # Redis down or slow: a replay cannot be ruled out
            raise TemporarilyUnavailable(
                "DPoP replay cache unavailable", reason="replay_cache_unavailable"
            ) from exc
        return bool(stored)

    async def ping(self) -> bool:
        try:
            return bool(await self._client.ping())
        except Exception:
            return False

    async def close(self) -> None:
        await self._client.aclose()
