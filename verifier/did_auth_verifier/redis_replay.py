"""A `ReplayCache` in Redis: one `SET key 1 NX PX ttl` per use, so every replica of an API
sees the same used values (withdrawal token `jti`s, DPoP proof `jti`s).

    from did_auth_verifier.redis_replay import RedisReplayCache

    replay = RedisReplayCache("redis://api-redis:6379/0")
    WithdrawalCheck(audience="trading-api", replay=replay)

`SET ... NX` is atomic in Redis: of two concurrent first uses exactly one gets OK. A Redis
that cannot be reached fails closed (`TemporarilyUnavailable`, 503): a token is never
accepted twice because the store was down. Needs the `redis` extra
(`pip install 'did-auth-verifier[redis]'`); `redis` is imported when the cache is built.
"""

from __future__ import annotations

from typing import Any

from did_auth_verifier.errors import TemporarilyUnavailable

__all__ = ["RedisReplayCache"]


class RedisReplayCache:
    """`add_if_absent` on Redis (`prefix` + key), synchronous (call it off the event loop)."""

    def __init__(
        self,
        url: str | None = None,
        *,
        client: Any = None,
        prefix: str = "dav:replay:",
        timeout: float = 2.0,
    ) -> None:
        if client is None:
            if url is None:
                raise ValueError("give a Redis URL or a client")
            import redis

            client = redis.Redis.from_url(
                url, socket_timeout=timeout, socket_connect_timeout=timeout
            )
        self._client = client
        self._prefix = prefix

    def add_if_absent(self, key: str, ttl: float) -> bool:
        import redis

        try:
            done = self._client.set(
                self._prefix + key, b"1", nx=True, px=max(1000, int(ttl * 1000))
            )
        except redis.RedisError as exc:
            raise TemporarilyUnavailable(
                "the replay store is unreachable", reason="replay_store_down"
            ) from exc
        return bool(done)

    def close(self) -> None:
        self._client.close()
