"""Redis store (redis.asyncio): atomic via SET NX EX, GETDEL and Lua; fails closed."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis.exceptions import NoScriptError, RedisError

from did_auth.errors import TemporarilyUnavailable

__all__ = ["RedisStore"]

T = TypeVar("T")

# Compare-and-delete: delete only when the value matches; return the stored value either way.
_TAKE_IF = """
local v = redis.call('GET', KEYS[1])
if v and v == ARGV[1] then redis.call('DEL', KEYS[1]) end
return v
"""

_SWAP = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0
"""

_INCR_TTL = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return n
"""


class RedisStore:
    def __init__(self, client: aioredis.Redis) -> None:
        self._r = client
        self._scripts: dict[str, str] = {}

    @classmethod
    def from_url(cls, url: str, *, timeout: float = 2.0) -> RedisStore:
        client = aioredis.Redis.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            health_check_interval=10,
            retry_on_timeout=False,
        )
        return cls(client)

    @property
    def client(self) -> aioredis.Redis:
        return self._r

    async def _call(self, fn: Callable[[], Awaitable[T]]) -> T:
        try:
            return await fn()
        except (RedisError, OSError) as exc:
            raise TemporarilyUnavailable(
                "the session store is unavailable", reason="redis_down"
            ) from exc

    async def eval(self, script: str, keys: list[str], args: list[Any]) -> Any:
        """Run a Lua script by SHA, loading it on first use (or after a Redis restart)."""

        async def run() -> Any:
            sha = self._scripts.get(script)
            if sha is None:
                sha = await self._r.script_load(script)
                self._scripts[script] = sha
            try:
                return await self._r.evalsha(sha, len(keys), *keys, *args)
            except NoScriptError:
                sha = await self._r.script_load(script)
                self._scripts[script] = sha
                return await self._r.evalsha(sha, len(keys), *keys, *args)

        return await self._call(run)

    async def put(self, key: str, value: bytes, ttl: float, *, nx: bool = False) -> bool:
        ms = max(1, int(ttl * 1000))
        res = await self._call(lambda: self._r.set(key, value, px=ms, nx=nx))
        return bool(res)

    async def get(self, key: str) -> bytes | None:
        res: bytes | None = await self._call(lambda: self._r.get(key))
        return res

    async def take(self, key: str, *, expect: bytes | None = None) -> bytes | None:
        if expect is None:
            res: bytes | None = await self._call(lambda: self._r.getdel(key))
            return res
        out: bytes | None = await self.eval(_TAKE_IF, [key], [expect])
        return out

    async def swap(self, key: str, expect: bytes, value: bytes, ttl: float) -> bool:
        res = await self.eval(_SWAP, [key], [expect, value, max(1, int(ttl * 1000))])
        return bool(res)

    async def delete(self, *keys: str) -> int:
        if not keys:
            return 0
        n: int = await self._call(lambda: self._r.delete(*keys))
        return n

    async def incr(self, key: str, ttl: float) -> int:
        n: int = await self.eval(_INCR_TTL, [key], [max(1, int(ttl * 1000))])
        return int(n)

    async def ttl(self, key: str) -> float | None:
        ms: int = await self._call(lambda: self._r.pttl(key))
        return None if ms < 0 else ms / 1000.0

    async def ping(self) -> None:
        await self._call(lambda: self._r.ping())

    async def close(self) -> None:
        try:
            await self._r.aclose()
        except (RedisError, OSError):
            pass
