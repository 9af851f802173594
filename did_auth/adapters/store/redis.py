"""Redis store (redis.asyncio): atomic via SET NX EX, GETDEL and Lua; fails closed.

Single node: `redis://host:port/db`, `rediss://...`.
Sentinel: `redis+sentinel://[user:password@]host:port[,host:port...]/SERVICE[/DB][?opts]`
(`rediss+sentinel://` for TLS to the data nodes): the listed sentinels are asked for the
current primary of SERVICE, and again after every connection failure, so a failover is
followed (see `parse_sentinel_url` and `RedisStore._durable`).
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
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import ExponentialWithJitterBackoff, NoBackoff
from redis.crc import key_slot
from redis.exceptions import NoScriptError, RedisClusterException, RedisError, ResponseError

from did_auth.adapters.store import redis_scripts as scripts
from did_auth.adapters.store.redis_urls import (  # re-exported: the URL forms this store takes
    CLUSTER_SCHEMES,
    SENTINEL_SCHEMES,
    parse_cluster_url,
    parse_sentinel_url,
)
from did_auth.adapters.store.resp import FastRedis
from did_auth.core.errors import TemporarilyUnavailable
from did_auth.core.ports.store import Store

__all__ = [
    "CLUSTER_SCHEMES",
    "SENTINEL_SCHEMES",
    "RedisStore",
    "parse_cluster_url",
    "parse_sentinel_url",
]


AnyRedis = aioredis.Redis | RedisCluster
T = TypeVar("T")


_DOWN = (RedisError, RedisClusterException, OSError)


def _unavailable() -> TemporarilyUnavailable:
    return TemporarilyUnavailable("the session store is unavailable", reason="redis_down")


class RedisStore(Store):
    def __init__(
        self,
        client: AnyRedis,
        *,
        url: str = "",
        fast: FastRedis | None = None,
        wait_replicas: int = 0,
        wait_timeout: float = 1.0,
        block_max: float = 1.0,
    ) -> None:
        # `_r` runs the store's commands: the multiplexed connection for a single node when
        # there is one, else redis-py. `client` stays redis-py (tests, admin commands).
        self._client = client
        self._r: Any = fast if fast is not None else client
        self._scripts: dict[str, str] = {}
        self._cluster = isinstance(client, RedisCluster)
        self.url = url
        # Sentinel: single-use writes wait for this many replicas (see `_durable`).
        self._wait_replicas = wait_replicas
        self._wait_ms = max(1, int(wait_timeout * 1000))
        self._replicas = 0  # replicas connected to the primary, asked at most once a second
        self._replicas_at = 0.0
        # A blocking read (feed_wait) must end before the socket timeout would cut it.
        self._block_ms = max(10, int(block_max * 1000))

    @classmethod
    def from_url(cls, url: str, *, timeout: float = 2.0) -> RedisStore:
        client: AnyRedis
        if url.startswith(SENTINEL_SCHEMES):
            target = parse_sentinel_url(url)
            sentinel = Sentinel(  # type: ignore[no-untyped-call]
                target.sentinels,
                socket_timeout=timeout,
                socket_connect_timeout=timeout,
            )
            # No command retries: a command that failed on a connection may have run on the
            # old primary (a consumed nonce, a rotated refresh token), so it is never sent
            # again blindly; the request fails with 503 and the next command reconnects to
            # the primary the sentinels name (redis-py re-asks them after a connection
            # error, and turns READONLY from a demoted primary into a connection error).
            client = sentinel.master_for(
                target.service,
                socket_timeout=timeout,
                socket_connect_timeout=timeout,
                health_check_interval=10,
                retry=Retry(NoBackoff(), 0),
                retry_on_timeout=False,
                **target.opts,
            )
            return cls(
                client,
                url=url,
                wait_replicas=target.wait_replicas,
                wait_timeout=timeout,
                block_max=timeout / 2,
            )
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
            return cls(
                client, url=url, fast=FastRedis.for_url(url, timeout), block_max=timeout / 2
            )
        return cls(client, url=url, block_max=timeout / 2)

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

    async def _durable(self, script: str, keys: list[str], args: list[Any]) -> Any:
        """Run a single-use write (take, swap) and WAIT until the primary's connected
        replicas (at most `_wait_replicas`) have it, on one connection (WAIT covers the
        writes of its own connection).

        Sentinel replication is asynchronous: a write the old primary acknowledged but had
        not yet sent to its replica is lost when that replica is promoted, so a consumed
        nonce or a rotated refresh token could be used a second time. Answering only once
        the replicas hold the write closes that window; when a connected replica does not
        confirm in time, the outcome is not durable and the request fails with 503 (the
        write may still stand on the primary: the client starts over rather than reusing
        the value). A primary with no replica connected (after a failover, until the old
        primary rejoins) answers without waiting: there is no replica to promote that could
        lack the write (Sentinel does not promote a replica long disconnected)."""
        try:
            single: Any = self._client.client()  # type: ignore[union-attr]  # never cluster
            async with single as conn:
                sha = self._scripts.get(script)
                if sha is None:
                    sha = await conn.script_load(script)
                    self._scripts[script] = sha
                try:
                    res = await conn.evalsha(sha, len(keys), *keys, *args)
                except NoScriptError:  # not run: a new primary after a failover
                    sha = await conn.script_load(script)
                    self._scripts[script] = sha
                    res = await conn.evalsha(sha, len(keys), *keys, *args)
                now = time.monotonic()
                if now - self._replicas_at > 1.0:
                    role = await conn.execute_command("ROLE")
                    master = bool(role) and role[0] in (b"master", "master")
                    self._replicas = len(role[2]) if master else 0
                    self._replicas_at = now
                wanted = min(self._wait_replicas, self._replicas)
                if wanted:
                    acked = int(await conn.execute_command("WAIT", wanted, self._wait_ms))
                    if acked < wanted:
                        self._replicas_at = 0.0  # look again: a replica may have gone
                        raise _unavailable()
        except _DOWN as exc:
            self._replicas_at = 0.0
            raise _unavailable() from exc
        return res

    async def take(self, key: str, *, expect: bytes | None = None) -> bytes | None:
        if self._wait_replicas:
            if expect is None:
                got: bytes | None = await self._durable(scripts.TAKE, [key], [])
            else:
                got = await self._durable(scripts.TAKE_IF, [key], [expect])
            return got
        if expect is None:
            try:
                res: bytes | None = await self._r.getdel(key)
            except _DOWN as exc:
                raise _unavailable() from exc
            return res
        out: bytes | None = await self.eval(scripts.TAKE_IF, [key], [expect])
        return out

    async def swap(self, key: str, expect: bytes, value: bytes, ttl: float) -> bool:
        if self._wait_replicas:
            args = [expect, value, max(1, int(ttl * 1000))]
            return bool(await self._durable(scripts.SWAP, [key], args))
        res = await self.eval(scripts.SWAP, [key], [expect, value, max(1, int(ttl * 1000))])
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
        n: int = await self.eval(scripts.INCR_TTL, [key], [max(1, int(ttl * 1000))])
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
        return await self._gcra_script(scripts.GCRA, buckets, dry=False)

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
        one `scripts.GCRA` script, atomic on its node, so every single bucket stays exact under
        any concurrency: a unit is only ever admitted from a bucket that has it. When a
        group denies, the groups already charged are given back exactly (`scripts.GCRA_REFUND`:
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
            res = await self._gcra_script(scripts.GCRA, [buckets[i] for i in idx], dry=False)
            for i, r in zip(idx, res, strict=True):
                results[i] = r
            if all(r[0] for r in res):
                charged.append(idx)
                continue
            pending = [
                self._gcra_script(scripts.GCRA_REFUND, [buckets[i] for i in g], dry=None)
                for g in charged
            ] + [
                self._gcra_script(scripts.GCRA, [buckets[i] for i in g], dry=True)
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
        res = await self.eval(scripts.CAP_ADD, [key], [member, int(cap), max(1, int(ttl * 1000))])
        return bool(res)

    async def cap_remove(self, key: str, member: str) -> bool:
        try:
            n = await self._r.zrem(key, member)
        except _DOWN as exc:
            raise _unavailable() from exc
        return bool(n)

    async def members(self, key: str) -> list[str]:
        raw: list[bytes] = await self.eval(scripts.MEMBERS, [key], [])
        return [m.decode() for m in raw]

    async def feed_append(self, stream: str, entry: bytes, *, keep_for: float) -> str:
        cursor = await self.eval(
            scripts.FEED_APPEND, [stream], [entry, max(0, int(keep_for * 1000))]
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

    async def feed_head(self, stream: str) -> str | None:
        async def run() -> str | None:
            try:
                # redis-py's client (the fast single-node client has no XINFO): this is
                # asked only when a follower's page came back empty.
                info = await self._client.xinfo_stream(stream)
            except ResponseError as exc:
                if "no such key" in str(exc).lower():
                    return None  # never written, or lost (Redis restarted without its data)
                raise
            last = info.get("last-generated-id")
            if last is None:
                return None
            return last.decode() if isinstance(last, bytes) else str(last)

        return await self._call(run)

    async def feed_wait(self, stream: str, after: str | None, timeout: float) -> str | None:
        async def run() -> str | None:
            # redis-py's pooled client: XREAD BLOCK holds a connection of its own for its
            # duration (on the multiplexed fast client it would stall every other command).
            block = max(1, min(self._block_ms, int(timeout * 1000)))
            # redis-py 8 types XREAD's reply as RESP2 list or RESP3 map; the client keeps the
            # RESP2 shape ([[stream, [(id, fields)]]]), read here.
            got: Any = await self._client.xread({stream: after or "0-0"}, count=1, block=block)
            if not got:
                return None
            newest = await self._client.xrevrange(stream, count=1)
            row = newest[0] if newest else got[0][1][-1]
            ident = row[0]
            return ident.decode() if isinstance(ident, bytes) else str(ident)

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
