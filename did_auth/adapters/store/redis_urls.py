"""Redis URLs: Redis Cluster seeds and Sentinel targets (redis+cluster://, redis+sentinel://)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from redis.asyncio.connection import parse_url

__all__ = [
    "CLUSTER_SCHEMES",
    "SENTINEL_SCHEMES",
    "SentinelTarget",
    "parse_cluster_url",
    "parse_sentinel_url",
]

CLUSTER_SCHEMES = ("redis+cluster://", "rediss+cluster://")
SENTINEL_SCHEMES = ("redis+sentinel://", "rediss+sentinel://")



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


def _split_nodes(url: str, schemes: tuple[str, ...], what: str) -> tuple[
    str, str, list[tuple[str, int]], str
]:
    """`scheme://[userinfo@]host:port[,host:port...][/path][?query]` -> scheme, userinfo,
    nodes, the rest (path and query)."""
    scheme = next((s for s in schemes if url.startswith(s)), None)
    if scheme is None:
        raise ValueError(f"a {what} URL starts with {' or '.join(schemes)}")
    rest = url[len(scheme) :]
    cut0 = min((i for i in (rest.find("/"), rest.find("?")) if i >= 0), default=len(rest))
    userinfo, _, hosts = rest[:cut0].rpartition("@")
    tail = rest[cut0:]
    nodes: list[tuple[str, int]] = []
    for item in hosts.split(","):
        host, sep, port = item.strip().rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ValueError(f"{what} node must be host:port, got {item!r}")
        nodes.append((unquote(host.strip("[]")), int(port)))
    return scheme, userinfo, nodes, tail


@dataclass(frozen=True)
class SentinelTarget:
    """What a `redis+sentinel://` URL names (see `parse_sentinel_url`)."""

    sentinels: list[tuple[str, int]]
    service: str
    opts: dict[str, Any]
    # WAIT numreplicas after a single-use write (nonce, code, refresh rotation).
    wait_replicas: int = 1


def parse_sentinel_url(url: str) -> SentinelTarget:
    """`redis+sentinel://[user:password@]host:port[,host:port...]/SERVICE[/DB][?opts]`.

    The hosts are sentinels; SERVICE is the name they monitor (`sentinel monitor SERVICE
    ...`); DB defaults to 0. user:password and the query options (redis-py's, such as
    `socket_timeout`) apply to the data nodes; `rediss+sentinel://` uses TLS to them.
    `wait_replicas=N` (default 1, 0 to turn off): after consuming a nonce, a code or a
    refresh token, wait until the replicas connected to the primary (at most N) have the
    write, else fail with 503 (see `RedisStore._durable`).
    """
    scheme, userinfo, nodes, tail = _split_nodes(url, SENTINEL_SCHEMES, "Redis Sentinel")
    path, _, query = tail.partition("?")
    parts = [unquote(p) for p in path.strip("/").split("/")] if path.strip("/") else []
    if not parts or not parts[0] or len(parts) > 2:
        raise ValueError(
            "a Redis Sentinel URL names the monitored service: "
            "redis+sentinel://host:port[,host:port]/SERVICE[/DB]"
        )
    service = parts[0]
    db = parts[1] if len(parts) == 2 else "0"
    if not db.isdigit():
        raise ValueError(f"Redis Sentinel database must be a number, got {db!r}")
    wait = 1
    kept: list[str] = []
    for item in query.split("&") if query else []:
        key, _, value = item.partition("=")
        if key == "wait_replicas":
            if not value.isdigit():
                raise ValueError(f"wait_replicas must be a count, got {value!r}")
            wait = int(value)
        else:
            kept.append(item)
    single = ("rediss://" if scheme.startswith("rediss") else "redis://") + (
        f"{userinfo}@" if userinfo else ""
    ) + f"placeholder/{db}" + (f"?{'&'.join(kept)}" if kept else "")
    opts: dict[str, Any] = dict(parse_url(single))
    opts.pop("host", None)
    opts.pop("port", None)
    if opts.pop("connection_class", None) is not None:
        opts["ssl"] = True
    return SentinelTarget(nodes, service, opts, wait)
