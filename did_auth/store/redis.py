"""Redis store (redis.asyncio): atomic via SET NX EX, GETDEL and Lua; fails closed."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
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

# GCRA over N buckets, all or nothing, one clock reading (Redis TIME, so replica clocks do not
# matter; Redis >= 5 replicates script effects, so TIME in a writing script is allowed).
# KEYS[i]: bucket; ARGV[3i-2], ARGV[3i-1], ARGV[3i]: period_ms, limit, cost.
# Times are whole microseconds (< 2^53, exact in Lua doubles); the emission interval is
# rounded up to a whole microsecond. Returns 4 integers per bucket:
# allowed, remaining, retry_after_ms (-1: cost > limit, never), reset_after_ms.
_GCRA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local n = #KEYS
local tats = {}
local res = {}
local ok = true
for i = 1, n do
  local period = tonumber(ARGV[3 * i - 2]) * 1000
  local limit = tonumber(ARGV[3 * i - 1])
  local cost = tonumber(ARGV[3 * i])
  local emission = math.ceil(period / limit)
  local burst = emission * limit
  local tat = tats[KEYS[i]]
  if tat == nil then
    local v = redis.call('GET', KEYS[i])
    tat = now
    if v then tat = tonumber(v) end
  end
  if tat < now then tat = now end
  local new_tat = tat + emission * cost
  local diff = now - (new_tat - burst)
  if diff < 0 then
    ok = false
    local retry = -1
    if emission * cost <= burst then retry = math.ceil(-diff / 1000) end
    local remaining = math.floor((now - tat + burst) / emission)
    if remaining < 0 then remaining = 0 end
    res[i] = {0, remaining, retry, math.ceil((tat - now) / 1000), tat, cost}
  else
    res[i] = {1, math.floor(diff / emission), 0, math.ceil((new_tat - now) / 1000), tat, cost}
    tats[KEYS[i]] = new_tat
  end
end
local out = {}
if ok then
  local written = {}
  for i = n, 1, -1 do
    local k = KEYS[i]
    if res[i][6] > 0 and not written[k] then
      written[k] = true
      local ttl = math.ceil((tats[k] - now) / 1000)
      if ttl < 1 then ttl = 1 end
      redis.call('SET', k, string.format('%.0f', tats[k]), 'PX', string.format('%.0f', ttl))
    end
  end
end
for i = 1, n do
  local r = res[i]
  if not ok and r[1] == 1 then
    -- not charged because another bucket denied: report its unchanged state
    r[2] = r[2] + r[6]
    r[4] = math.ceil((r[5] - now) / 1000)
  end
  out[4 * i - 3] = r[1]
  out[4 * i - 2] = r[2]
  out[4 * i - 1] = r[3]
  out[4 * i] = r[4]
end
return out
"""

# A bounded set of live members, scored by expiry (ms, Redis TIME): purge expired, refuse at
# cap, keep the key alive as long as its newest member. ARGV: member, cap, ttl_ms.
_CAP_ADD = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local cap = tonumber(ARGV[2])
local ttl = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%.0f', now))
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  if redis.call('ZCARD', KEYS[1]) >= cap then return 0 end
end
redis.call('ZADD', KEYS[1], string.format('%.0f', now + ttl), ARGV[1])
if redis.call('PTTL', KEYS[1]) < ttl then redis.call('PEXPIRE', KEYS[1], ARGV[3]) end
return 1
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

    async def gcra(
        self, key: str, period_ms: int, limit: int, cost: int
    ) -> tuple[int, int, int, int]:
        return (await self.gcra_many([(key, period_ms, limit, cost)]))[0]

    async def gcra_many(
        self, buckets: Sequence[tuple[str, int, int, int]]
    ) -> list[tuple[int, int, int, int]]:
        if not buckets:
            return []
        keys = [b[0] for b in buckets]
        args: list[int] = []
        for _key, period_ms, limit, cost in buckets:
            args += [int(period_ms), int(limit), int(cost)]
        flat = await self.eval(_GCRA, keys, args)
        vals = [int(v) for v in flat]
        return [(vals[i], vals[i + 1], vals[i + 2], vals[i + 3]) for i in range(0, len(vals), 4)]

    async def cap_add(self, key: str, member: str, cap: int, ttl: float) -> bool:
        res = await self.eval(_CAP_ADD, [key], [member, int(cap), max(1, int(ttl * 1000))])
        return bool(res)

    async def cap_remove(self, key: str, member: str) -> bool:
        n: int = await self._call(lambda: self._r.zrem(key, member))
        return bool(n)

    async def members(self, key: str) -> list[str]:
        async def run() -> list[str]:
            now_s, now_us = await self._r.time()
            now_ms = int(now_s) * 1000 + int(now_us) // 1000
            raw: list[bytes] = await self._r.zrangebyscore(key, f"({now_ms}", "+inf")
            return [m.decode() for m in raw]

        return await self._call(run)

    async def feed_append(self, stream: str, entry: bytes, *, maxlen: int) -> str:
        async def run() -> str:
            cursor = await self._r.xadd(stream, {"e": entry}, maxlen=maxlen, approximate=True)
            return cursor.decode() if isinstance(cursor, bytes) else str(cursor)

        return await self._call(run)

    async def feed_read(
        self, stream: str, after: str | None, count: int
    ) -> list[tuple[str, bytes]]:
        async def run() -> list[tuple[str, bytes]]:
            start = "-" if after is None else f"({after}"
            rows = await self._r.xrange(stream, min=start, max="+", count=count)
            return [(i.decode() if isinstance(i, bytes) else str(i), f[b"e"]) for i, f in rows]

        return await self._call(run)

    async def publish(self, channel: str, message: bytes) -> None:
        async def run() -> None:
            await self._r.publish(channel, message)

        await self._call(run)

    async def close(self) -> None:
        try:
            await self._r.aclose()
        except (RedisError, OSError):
            pass
