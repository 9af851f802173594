"""RESP over one multiplexed connection: the single-node Redis client of the store's hot path.

A login makes about ten store calls, and redis-py's asyncio client spends ~50-100 us of CPU
on each outside Redis (a pool checkout under a lock, a timeout context per read, health
checks, retry wrappers). For a single node the store therefore talks RESP itself over one
connection shared by all requests of the process: commands are queued and written together
once per event-loop turn (pipelining across concurrent requests), replies are matched to
callers in order. Errors map to redis-py's exception types, so `RedisStore` handles both
clients alike. Cluster mode keeps redis-py's `RedisCluster` (slot map, redirections,
failover).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Sequence
from typing import Any
from urllib.parse import urlparse

from redis.asyncio.connection import parse_url
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

__all__ = ["FastRedis", "PyReader"]

_HiredisReader: Any = None
try:  # hiredis: the C RESP parser redis-py uses too; the pure-Python reader is the fallback
    from hiredis import Reader as _HiredisReader
except ImportError:  # pragma: no cover - depends on the environment
    pass


class _ReplyError(Exception):
    """An error reply (`-ERR ...`) from the pure-Python reader."""


_INCOMPLETE = object()


class PyReader:
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
        self.reader: Any = _HiredisReader() if _HiredisReader is not None else PyReader()
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


class FastRedis:
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
    def for_url(cls, url: str, timeout: float) -> FastRedis | None:
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
        if isinstance(reply, Exception):  # an error reply (hiredis or PyReader)
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
