"""Redis store (redis.asyncio): atomic via SET NX EX, GETDEL and Lua; fails closed.

Single node (or a Sentinel-managed primary): `redis://host:port/db`, `rediss://...`.
Redis Cluster: `redis+cluster://[user:password@]host:port[,host:port...][?options]`
(`rediss+cluster://` for TLS); the listed nodes are only seeds, the client discovers the
rest of the cluster and follows MOVED/ASK redirections. Cluster mode has database 0 only.

Cluster safety: every key is `da:{<tag>}...`, and every Lua script or multi-key command
here touches the keys of one hash tag only (`take`, `swap`, `incr`, `cap_add`,
`members`: one key; feeds: one stream), so each runs on the one node that owns that slot,
atomically, exactly as on a single Redis. Two operations span tags:
- `delete(*keys)`: split per slot by the client (one DEL per slot; each atomic, the whole
  not). Callers only delete keys of one tag together (or do not need atomicity).
- `gcra_many` across buckets of different identities: see `_gcra_many_cluster`.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar
from urllib.parse import unquote, urlparse

import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.connection import parse_url
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff
from redis.crc import key_slot
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, RedisClusterException, RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from did_auth.errors import TemporarilyUnavailable

__all__ = ["CLUSTER_SCHEMES", "RedisStore", "parse_cluster_url"]

CLUSTER_SCHEMES = ("redis+cluster://", "rediss+cluster://")
AnyRedis = aioredis.Redis | RedisCluster

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
# ARGV[1]: "1" = dry run (decide and report, never write; as if another bucket had denied).
# KEYS[i]: bucket; ARGV[3i-1], ARGV[3i], ARGV[3i+1]: period_ms, limit, cost.
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
  local period = tonumber(ARGV[3 * i - 1]) * 1000
  local limit = tonumber(ARGV[3 * i])
  local cost = tonumber(ARGV[3 * i + 1])
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
if ARGV[1] == '1' then ok = false end
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


# `feed_append`: XADD, then trim by age (XTRIM MINID ~): entries whose id (Redis time in ms)
# is older than ARGV[2] ms before the new entry's go; `~` may keep a few more, never fewer.
_FEED_APPEND = """
local id = redis.call('XADD', KEYS[1], '*', 'e', ARGV[1])
local ms = tonumber(string.match(id, '^(%d+)'))
local floor = ms - tonumber(ARGV[2])
if floor > 0 then
  redis.call('XTRIM', KEYS[1], 'MINID', '~', string.format('%.0f', floor))
end
return id
"""


# Cluster compensation for `gcra_many`: give back provisional charges. KEYS[i] with
# ARGV[3i-2], ARGV[3i-1], ARGV[3i] = period_ms, limit, cost as charged: each key's TAT moves
# back by exactly emission * cost (summed over its buckets); a TAT that falls to now or
# below means the bucket is full again and the key is deleted. Then every bucket's state is
# reported as a cost-0 peek: 4 integers each, allowed (1), remaining, 0, reset_after_ms.
_GCRA_REFUND = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local n = #KEYS
local back = {}
local emissions = {}
for i = 1, n do
  local period = tonumber(ARGV[3 * i - 2]) * 1000
  local limit = tonumber(ARGV[3 * i - 1])
  local emission = math.ceil(period / limit)
  emissions[i] = emission
  back[KEYS[i]] = (back[KEYS[i]] or 0) + emission * tonumber(ARGV[3 * i])
end
local tats = {}
for i = 1, n do
  local k = KEYS[i]
  if tats[k] == nil then
    local v = redis.call('GET', k)
    local tat = now
    if v then tat = tonumber(v) end
    if back[k] > 0 and v then
      tat = tat - back[k]
      if tat > now then
        local ttl = math.ceil((tat - now) / 1000)
        if ttl < 1 then ttl = 1 end
        redis.call('SET', k, string.format('%.0f', tat), 'PX', string.format('%.0f', ttl))
      else
        redis.call('DEL', k)
      end
    end
    if tat < now then tat = now end
    tats[k] = tat
  end
end
local out = {}
for i = 1, n do
  local emission = emissions[i]
  local burst = emission * tonumber(ARGV[3 * i - 1])
  local tat = tats[KEYS[i]]
  local remaining = math.floor((now - tat + burst) / emission)
  if remaining < 0 then remaining = 0 end
  out[4 * i - 3] = 1
  out[4 * i - 2] = remaining
  out[4 * i - 1] = 0
  out[4 * i] = math.ceil((tat - now) / 1000)
end
return out
"""

# Live members of a bounded set, on the owning node's clock (one round trip, one node).
_MEMBERS = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. string.format('%.0f', now), '+inf')
"""


def parse_cluster_url(url: str) -> tuple[list[tuple[str, int]], dict[str, Any]]:
    """`redis+cluster://[user:password@]host:port[,host:port...][/0][?opts]`: the seed nodes,
    and the connection options redis-py's URL parser finds in the rest (user, password,
    query options such as `socket_timeout`; TLS for `rediss+cluster://`)."""
    scheme = next((s for s in CLUSTER_SCHEMES if url.startswith(s)), None)
    if scheme is None:
        raise ValueError(f"a Redis Cluster URL starts with {' or '.join(CLUSTER_SCHEMES)}")
    rest = url[len(scheme) :]
    userinfo, _, hostpart = rest.rpartition("@")
    cut = min((i for i in (hostpart.find("/"), hostpart.find("?")) if i >= 0), default=-1)
    hosts, tail = (hostpart, "") if cut < 0 else (hostpart[:cut], hostpart[cut:])
    nodes: list[tuple[str, int]] = []
    for item in hosts.split(","):
        host, sep, port = item.strip().rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ValueError(f"Redis Cluster node must be host:port, got {item!r}")
        nodes.append((unquote(host.strip("[]")), int(port)))
    single = ("rediss://" if scheme.startswith("rediss") else "redis://") + (
        f"{userinfo}@" if userinfo else ""
    ) + f"placeholder{tail}"
    opts: dict[str, Any] = dict(parse_url(single))
    opts.pop("host", None)
    if opts.pop("db", 0) not in (0, None):
        raise ValueError("Redis Cluster has database 0 only")
    if opts.pop("connection_class", None) is not None:
        opts["ssl"] = True
    return nodes, opts


# -- single node: one multiplexed connection -------------------------------------------------
#
# Hot path (issue 9): a login makes about ten store calls, and redis-py's asyncio client
# spends ~50-100 us of CPU on each outside Redis (a pool checkout under a lock, a timeout
# context per read, health checks, retry wrappers). For a single node the store therefore
# talks RESP itself over one connection shared by all requests of the process: commands are
# queued and written together once per event-loop turn (pipelining across concurrent
# requests), replies are matched to callers in order. Errors map to redis-py's exception
# types, so `RedisStore` handles both clients alike. Cluster mode keeps redis-py's
# `RedisCluster` (slot map, redirections, failover).

_HiredisReader: Any = None
try:  # hiredis: the C RESP parser redis-py uses too; the pure-Python reader is the fallback
    from hiredis import Reader as _HiredisReader
except ImportError:  # pragma: no cover - depends on the environment
    pass


class _ReplyError(Exception):
    """An error reply (`-ERR ...`) from the pure-Python reader."""


_INCOMPLETE = object()


class _PyReader:
    """Incremental RESP2 reader with hiredis.Reader's interface (`feed`, `gets`)."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._pos = 0

    def feed(self, data: bytes) -> None:
        self._buf += data

    def gets(self) -> Any:
        value, pos = self._parse(self._pos)
        if value is _INCOMPLETE:
            return False
        self._pos = pos
        if pos == len(self._buf):
            self._buf.clear()
            self._pos = 0
        elif pos > 65536:  # a partial reply stays behind: drop what was parsed
            del self._buf[:pos]
            self._pos = 0
        return value

    def _parse(self, pos: int) -> tuple[Any, int]:
        buf = self._buf
        end = buf.find(b"\r\n", pos)
        if end < 0:
            return _INCOMPLETE, pos
        kind, line, nxt = buf[pos], bytes(buf[pos + 1 : end]), end + 2
        if kind == 43:  # +simple
            return line, nxt
        if kind == 45:  # -error
            return _ReplyError(line.decode(errors="replace")), nxt
        if kind == 58:  # :integer
            return int(line), nxt
        if kind == 36:  # $bulk
            n = int(line)
            if n < 0:
                return None, nxt
            if len(buf) < nxt + n + 2:
                return _INCOMPLETE, pos
            return bytes(buf[nxt : nxt + n]), nxt + n + 2
        if kind == 42:  # *array
            n = int(line)
            if n < 0:
                return None, nxt
            items = []
            for _ in range(n):
                item, nxt = self._parse(nxt)
                if item is _INCOMPLETE:
                    return _INCOMPLETE, pos
                items.append(item)
            return items, nxt
        raise RedisConnectionError(f"unexpected RESP type byte {kind!r}")


def _pack_py(args: Sequence[Any]) -> bytes:
    parts = [b"*%d\r\n" % len(args)]
    for a in args:
        if isinstance(a, bytes):
            b = a
        elif isinstance(a, str):
            b = a.encode()
        elif isinstance(a, int):
            b = b"%d" % a
        else:
            b = repr(a).encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(b), b))
    return b"".join(parts)


_hiredis_pack: Any = None
try:  # hiredis >= 2.1 packs commands in C (what redis-py uses too)
    from hiredis import pack_command as _hiredis_pack
except ImportError:  # pragma: no cover - depends on the environment
    pass


def _pack(args: tuple[Any, ...]) -> bytes:
    if _hiredis_pack is not None:
        try:
            return bytes(_hiredis_pack(args))
        except TypeError:  # an argument type hiredis does not take: pack it here
            pass
    return _pack_py(args)


def _reply_exception(reply: Any) -> RedisError:
    text = str(reply.args[0]) if reply.args else str(reply)
    if text.startswith("NOSCRIPT"):
        return NoScriptError(text)
    return ResponseError(text)


class _Resp(asyncio.Protocol):
    """One connection: writes batched per loop turn, replies handed out in FIFO order, a
    watchdog that aborts the connection when the oldest reply is `timeout` late."""

    def __init__(self, loop: asyncio.AbstractEventLoop, timeout: float) -> None:
        self.loop = loop
        self.timeout = timeout
        self.reader: Any = _HiredisReader() if _HiredisReader is not None else _PyReader()
        self.pending: deque[asyncio.Future[Any]] = deque()
        self.sent_at: deque[float] = deque()
        self.out: list[bytes] = []
        self.transport: Any = None  # asyncio's or uvloop's TCP transport
        self.open = False
        self._flush_handle: asyncio.Handle | None = None
        self._watchdog: asyncio.TimerHandle | None = None
        self._error: RedisError | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.open = True

    def send(self, data: bytes) -> asyncio.Future[Any]:
        fut = self.loop.create_future()
        if not self.open:
            fut.set_exception(self._error or RedisConnectionError("connection closed"))
            return fut
        self.pending.append(fut)
        self.sent_at.append(self.loop.time())
        self.out.append(data)
        if self._flush_handle is None:
            self._flush_handle = self.loop.call_soon(self._flush)
        if self._watchdog is None:
            self._watchdog = self.loop.call_later(self.timeout, self._check)
        return fut

    def _flush(self) -> None:
        self._flush_handle = None
        if self.open and self.transport is not None and self.out:
            self.transport.write(b"".join(self.out))
        self.out.clear()

    def _check(self) -> None:
        self._watchdog = None
        if not self.pending:
            return
        late = self.loop.time() - self.sent_at[0]
        if late >= self.timeout:
            self.fail(RedisTimeoutError("Timeout reading from Redis"))
        else:
            self._watchdog = self.loop.call_later(self.timeout - late, self._check)

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        while True:
            try:
                reply = self.reader.gets()
            except Exception as exc:  # a protocol error: nothing on this connection is safe
                self.fail(RedisConnectionError(f"bad reply from Redis: {exc}"))
                return
            if reply is False:
                return
            if not self.pending:
                self.fail(RedisConnectionError("reply without a request"))
                return
            fut = self.pending.popleft()
            self.sent_at.popleft()
            if not fut.done():  # a cancelled caller's reply is read and dropped
                fut.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.fail(RedisConnectionError("Connection closed by Redis"))

    def fail(self, error: RedisError) -> None:
        self.open = False
        self._error = error
        for handle in (self._flush_handle, self._watchdog):
            if handle is not None:
                handle.cancel()
        self._flush_handle = self._watchdog = None
        self.out.clear()
        self.sent_at.clear()
        if self.loop.is_closed():  # left behind by a finished event loop: just drop it
            self.pending.clear()
            return
        if self.transport is not None:
            self.transport.abort()
        while self.pending:
            fut = self.pending.popleft()
            if not fut.done():
                fut.set_exception(error)


class _FastRedis:
    """The subset of `redis.asyncio.Redis` that `RedisStore` uses, over one multiplexed
    connection (see above). Connects lazily in the running loop, reconnects after a failure
    on the next call, and follows a change of event loop (tests, CLI) by reconnecting."""

    def __init__(
        self, host: str, port: int, *, db: int, username: str | None, password: str | None,
        timeout: float,
    ) -> None:
        self._addr = (host, port)
        self._db = db
        self._auth = [a for a in (username, password) if a is not None]
        self._timeout = timeout
        self._proto: _Resp | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._connecting: asyncio.Task[_Resp] | None = None

    @classmethod
    def for_url(cls, url: str, timeout: float) -> _FastRedis | None:
        """For a plain `redis://host:port/db` URL; None for TLS, unix sockets or options,
        which stay with redis-py."""
        parsed = urlparse(url)
        if parsed.scheme != "redis" or parsed.query or not parsed.hostname:
            return None
        kw = parse_url(url)
        return cls(
            str(kw.get("host", "localhost")), int(kw.get("port", 6379)),
            db=int(kw.get("db", 0) or 0), username=kw.get("username"),
            password=kw.get("password"), timeout=timeout,
        )

    async def _connect(self, loop: asyncio.AbstractEventLoop) -> _Resp:
        proto = _Resp(loop, self._timeout)
        try:
            await asyncio.wait_for(
                loop.create_connection(lambda: proto, *self._addr), self._timeout
            )
        except (OSError, TimeoutError) as exc:
            raise RedisConnectionError(f"Error connecting to {self._addr}: {exc}") from exc
        handshake = []
        if self._auth:
            handshake.append(proto.send(_pack(("AUTH", *self._auth))))
        if self._db:
            handshake.append(proto.send(_pack(("SELECT", self._db))))
        for fut in handshake:
            reply = await fut
            if isinstance(reply, Exception):
                proto.fail(RedisConnectionError("Redis refused the connection set-up"))
                raise _reply_exception(reply)
        return proto

    async def _connected(self) -> _Resp:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # a new event loop: the old connection cannot be used
            if self._proto is not None and self._proto.open:
                self._proto.fail(RedisConnectionError("event loop changed"))
            self._proto, self._connecting, self._loop = None, None, loop
        if self._connecting is None or self._connecting.done():
            self._connecting = loop.create_task(self._connect(loop))
        self._proto = await asyncio.shield(self._connecting)
        return self._proto

    async def execute_command(self, *args: Any) -> Any:
        proto = self._proto
        if proto is None or not proto.open or proto.loop is not asyncio.get_running_loop():
            proto = await self._connected()
        reply = await proto.send(_pack(args))
        if isinstance(reply, Exception):  # an error reply (hiredis or _PyReader)
            raise _reply_exception(reply)
        return reply

    # -- the redis-py methods RedisStore calls, with redis-py's return types ------------

    # (Plain functions returning the command's awaitable where the raw reply already has
    # the type redis-py returns, or one `bool()` treats alike: b"OK" / None for SET.)

    def set(self, key: str, value: bytes, *, px: int, nx: bool = False) -> Awaitable[Any]:
        if nx:
            return self.execute_command("SET", key, value, "PX", px, "NX")
        return self.execute_command("SET", key, value, "PX", px)

    def get(self, key: str) -> Awaitable[Any]:
        return self.execute_command("GET", key)

    def getdel(self, key: str) -> Awaitable[Any]:
        return self.execute_command("GETDEL", key)

    def delete(self, *keys: str) -> Awaitable[Any]:
        return self.execute_command("DEL", *keys)

    def pttl(self, key: str) -> Awaitable[Any]:
        return self.execute_command("PTTL", key)

    async def ping(self) -> bool:
        return bool(await self.execute_command("PING") == b"PONG")

    async def script_load(self, script: str) -> str:
        return bytes(await self.execute_command("SCRIPT", "LOAD", script)).decode()

    def evalsha(self, sha: str, numkeys: int, *keys_and_args: Any) -> Awaitable[Any]:
        return self.execute_command("EVALSHA", sha, numkeys, *keys_and_args)

    def zrem(self, key: str, member: str) -> Awaitable[Any]:
        return self.execute_command("ZREM", key, member)

    async def xadd(
        self, stream: str, fields: dict[str, bytes], *, maxlen: int, approximate: bool = True
    ) -> bytes:
        args: list[Any] = ["XADD", stream, "MAXLEN", *(["~"] if approximate else []), maxlen, "*"]
        for k, v in fields.items():
            args += [k, v]
        return bytes(await self.execute_command(*args))

    async def xrange(
        self, stream: str, min: str, max: str, count: int
    ) -> list[tuple[bytes, dict[bytes, bytes]]]:
        rows = await self.execute_command("XRANGE", stream, min, max, "COUNT", count)
        return [(i, dict(zip(f[::2], f[1::2], strict=True))) for i, f in rows]

    async def aclose(self) -> None:
        if self._proto is not None:
            self._proto.fail(RedisConnectionError("closed"))
        self._proto = self._connecting = None


_DOWN = (RedisError, RedisClusterException, OSError)


def _unavailable() -> TemporarilyUnavailable:
    return TemporarilyUnavailable("the session store is unavailable", reason="redis_down")


class RedisStore:
    def __init__(self, client: AnyRedis, *, url: str = "", fast: _FastRedis | None = None) -> None:
        # `_r` runs the store's commands: the multiplexed connection for a single node when
        # there is one, else redis-py. `client` stays redis-py (tests, admin commands).
        self._client = client
        self._r: Any = fast if fast is not None else client
        self._scripts: dict[str, str] = {}
        self._cluster = isinstance(client, RedisCluster)
        self.url = url

    @classmethod
    def from_url(cls, url: str, *, timeout: float = 2.0) -> RedisStore:
        client: AnyRedis
        if url.startswith(CLUSTER_SCHEMES):
            nodes, opts = parse_cluster_url(url)
            client = RedisCluster(
                startup_nodes=[ClusterNode(host, port) for host, port in nodes],
                socket_timeout=timeout,
                socket_connect_timeout=timeout,
                health_check_interval=10,
                # Retries cover a failover or a resharding (the client re-reads the slot
                # map between attempts); short, so an unreachable cluster still fails closed
                # within a few timeouts.
                retry=Retry(ExponentialWithJitterBackoff(base=0.05, cap=0.5), retries=2),
                **opts,
            )
        else:
            client = aioredis.Redis.from_url(
                url,
                socket_timeout=timeout,
                socket_connect_timeout=timeout,
                health_check_interval=10,
                retry_on_timeout=False,
            )
            return cls(client, url=url, fast=_FastRedis.for_url(url, timeout))
        return cls(client, url=url)

    @property
    def client(self) -> AnyRedis:
        return self._client

    @property
    def cluster(self) -> bool:
        return self._cluster

    async def _call(self, fn: Callable[[], Awaitable[T]]) -> T:
        try:
            return await fn()
        except _DOWN as exc:
            raise _unavailable() from exc

    # The hot operations below catch `_DOWN` inline rather than through `_call` (no closure
    # and no extra coroutine per command on the login path).

    async def eval(self, script: str, keys: list[str], args: list[Any]) -> Any:
        """Run a Lua script by SHA, loading it on first use (or after a Redis restart)."""
        r = self._r
        try:
            sha = self._scripts.get(script)
            if sha is None:
                sha = await r.script_load(script)  # cluster: loaded on every primary
                self._scripts[script] = sha
            try:
                return await r.evalsha(sha, len(keys), *keys, *args)
            except NoScriptError:
                sha = await r.script_load(script)
                self._scripts[script] = sha
                return await r.evalsha(sha, len(keys), *keys, *args)
        except _DOWN as exc:
            raise _unavailable() from exc

    async def put(self, key: str, value: bytes, ttl: float, *, nx: bool = False) -> bool:
        try:
            res = await self._r.set(key, value, px=max(1, int(ttl * 1000)), nx=nx)
        except _DOWN as exc:
            raise _unavailable() from exc
        return bool(res)

    async def get(self, key: str) -> bytes | None:
        try:
            res: bytes | None = await self._r.get(key)
        except _DOWN as exc:
            raise _unavailable() from exc
        return res

    async def take(self, key: str, *, expect: bytes | None = None) -> bytes | None:
        if expect is None:
            try:
                res: bytes | None = await self._r.getdel(key)
            except _DOWN as exc:
                raise _unavailable() from exc
            return res
        out: bytes | None = await self.eval(_TAKE_IF, [key], [expect])
        return out

    async def swap(self, key: str, expect: bytes, value: bytes, ttl: float) -> bool:
        res = await self.eval(_SWAP, [key], [expect, value, max(1, int(ttl * 1000))])
        return bool(res)

    async def delete(self, *keys: str) -> int:
        if not keys:
            return 0
        try:
            n = await self._r.delete(*keys)
        except _DOWN as exc:
            raise _unavailable() from exc
        return int(n)

    async def incr(self, key: str, ttl: float) -> int:
        n: int = await self.eval(_INCR_TTL, [key], [max(1, int(ttl * 1000))])
        return int(n)

    async def ttl(self, key: str) -> float | None:
        try:
            ms = int(await self._r.pttl(key))
        except _DOWN as exc:
            raise _unavailable() from exc
        return None if ms < 0 else ms / 1000.0

    async def ping(self) -> None:
        r: Any = self._r

        async def run() -> None:
            await r.ping()  # cluster: every node

        await self._call(run)

    async def gcra(
        self, key: str, period_ms: int, limit: int, cost: int
    ) -> tuple[int, int, int, int]:
        return (await self.gcra_many([(key, period_ms, limit, cost)]))[0]

    async def gcra_many(
        self, buckets: Sequence[tuple[str, int, int, int]]
    ) -> list[tuple[int, int, int, int]]:
        if not buckets:
            return []
        if self._cluster:
            groups: dict[int, list[int]] = {}
            for i, (key, *_rest) in enumerate(buckets):
                groups.setdefault(self.slot(key), []).append(i)
            if len(groups) > 1:
                return await self._gcra_many_cluster(buckets, list(groups.values()))
        return await self._gcra_script(_GCRA, buckets, dry=False)

    @staticmethod
    def slot(key: str) -> int:
        """The Redis Cluster hash slot of `key` (CRC16 of its hash tag, mod 16384)."""
        return int(key_slot(key.encode()))

    async def _gcra_script(
        self, script: str, buckets: Sequence[tuple[str, int, int, int]], *, dry: bool | None
    ) -> list[tuple[int, int, int, int]]:
        keys = [b[0] for b in buckets]
        args: list[int | str] = [] if dry is None else ["1" if dry else "0"]
        for _key, period_ms, limit, cost in buckets:
            args += [int(period_ms), int(limit), int(cost)]
        flat = await self.eval(script, keys, args)
        vals = [int(v) for v in flat]
        return [(vals[i], vals[i + 1], vals[i + 2], vals[i + 3]) for i in range(0, len(vals), 4)]

    async def _gcra_many_cluster(
        self, buckets: Sequence[tuple[str, int, int, int]], groups: list[list[int]]
    ) -> list[tuple[int, int, int, int]]:
        """All-or-nothing GCRA over buckets in several hash slots (Redis Cluster).

        One script cannot span slots, so the buckets are grouped by slot and the groups are
        charged one after another, in the caller's order (put the bucket most likely to
        deny first: a denial there costs one round trip and charges nothing). Each group is
        one `_GCRA` script, atomic on its node, so every single bucket stays exact under
        any concurrency: a unit is only ever admitted from a bucket that has it. When a
        group denies, the groups already charged are given back exactly (`_GCRA_REFUND`:
        TAT minus emission * cost) and the groups not reached are decided in a dry run, in
        one concurrent round; nothing stays charged by a denied call.

        What is not kept across slots is isolation: while a call holds its provisional
        charges (one round trip), a concurrent call may see those units as spent and be
        denied (never wrongly admitted). And if, during that hold, a bucket would otherwise
        have refilled completely, the refund can return up to the hold time (about one
        round trip) of refill early. A single bucket, or buckets sharing a hash tag, keep
        the single-script semantics exactly.
        """
        results: list[tuple[int, int, int, int] | None] = [None] * len(buckets)
        charged: list[list[int]] = []
        for gi, idx in enumerate(groups):
            res = await self._gcra_script(_GCRA, [buckets[i] for i in idx], dry=False)
            for i, r in zip(idx, res, strict=True):
                results[i] = r
            if all(r[0] for r in res):
                charged.append(idx)
                continue
            pending = [
                self._gcra_script(_GCRA_REFUND, [buckets[i] for i in g], dry=None)
                for g in charged
            ] + [
                self._gcra_script(_GCRA, [buckets[i] for i in g], dry=True)
                for g in groups[gi + 1 :]
            ]
            outs = await asyncio.gather(*pending, return_exceptions=True)
            errors = [o for o in outs if isinstance(o, BaseException)]
            if errors:
                raise errors[0]
            for g, out in zip([*charged, *groups[gi + 1 :]], outs, strict=True):
                assert not isinstance(out, BaseException)
                for i, r in zip(g, out, strict=True):
                    results[i] = r
            break
        return [r for r in results if r is not None]

    async def cap_add(self, key: str, member: str, cap: int, ttl: float) -> bool:
        res = await self.eval(_CAP_ADD, [key], [member, int(cap), max(1, int(ttl * 1000))])
        return bool(res)

    async def cap_remove(self, key: str, member: str) -> bool:
        try:
            n = await self._r.zrem(key, member)
        except _DOWN as exc:
            raise _unavailable() from exc
        return bool(n)

    async def members(self, key: str) -> list[str]:
        raw: list[bytes] = await self.eval(_MEMBERS, [key], [])
        return [m.decode() for m in raw]

    async def feed_append(self, stream: str, entry: bytes, *, keep_for: float) -> str:
        cursor = await self.eval(
            _FEED_APPEND, [stream], [entry, max(0, int(keep_for * 1000))]
        )
        return cursor.decode() if isinstance(cursor, bytes) else str(cursor)

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
            # Classic pub/sub is cluster-wide: any node delivers to every subscriber.
            await self._r.execute_command("PUBLISH", channel, message)

        await self._call(run)

    async def close(self) -> None:
        for c in {id(self._r): self._r, id(self._client): self._client}.values():
            try:
                await c.aclose()
            except (RedisError, OSError):
                pass
