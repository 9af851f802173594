"""Rate limiting: GCRA buckets shared by all replicas, and the IETF RateLimit header fields.

Implements:
- GCRA, the generic cell rate algorithm (ATM Forum TM 4.0; the "theoretical arrival time"
  formulation): a bucket of `limit` units refilled continuously at `limit / period`, allowing
  the whole `limit` as one burst. The arithmetic and the clock live in the store
  (`Store.gcra` / `Store.gcra_many`: one Lua script per decision with Redis `TIME` as the
  clock, or the same maths in memory), so every replica sees one exact count.
- The `RateLimit-Policy` and `RateLimit` response fields of draft-ietf-httpapi-ratelimit-
  headers-11 (May 2026, the latest draft), both Structured-Field Lists (RFC 9651) of items
  whose value is a String naming the policy:
      RateLimit-Policy: "verify_per_ip";q=30;w=60
      RateLimit: "verify_per_ip";r=12;t=18
  `q` quota, `w` window (seconds), `r` available quota, `t` effective window (seconds, here
  the time until the bucket is full again; on a denial the time until a unit is available,
  so that `Retry-After` is never earlier than the end of the effective window, draft §6).
  Older drafts' `RateLimit-Limit` / `-Remaining` / `-Reset` are deliberately not sent.
- `Retry-After` (RFC 9110 §10.2.3, delay-seconds, at least 1) on denials.

Pure: no Redis, FastAPI or settings imports; the store is any object with `gcra_many`.
"""

from __future__ import annotations

import functools
import ipaddress
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from did_auth.core.errors import RateLimited
from did_auth.core.ports import store_keys

__all__ = [
    "KEY_PREFIX",
    "Decision",
    "GcraStore",
    "Rate",
    "RateLimitExceeded",
    "RateLimiter",
    "check_all",
    "client_ip_key",
    "enforce",
    "parse_rate",
    "ratelimit_headers",
    "rates_from_config",
]

KEY_PREFIX = store_keys.PREFIX  # the project-wide key prefix; each bucket is its own hash tag

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_RATE_RE = re.compile(r"^\s*(\d+)\s*/\s*([smhd])\s*$")
_NAME_RE = re.compile(r"^[\x20-\x7e]*$")


@dataclass(frozen=True, slots=True)
class Rate:
    """`limit` units per `period` seconds; `name` is the policy name shown in headers."""

    limit: int
    period: float
    name: str = ""

    def __post_init__(self) -> None:
        if self.limit < 1:
            raise ValueError("a rate limit must admit at least 1 unit")
        if self.period <= 0:
            raise ValueError("a rate period must be positive")

    @property
    def period_ms(self) -> int:
        return max(1, round(self.period * 1000))

    @property
    def policy(self) -> str:
        return self.name or str(self)

    def __str__(self) -> str:
        for unit, secs in (("h", 3600), ("m", 60), ("s", 1)):
            if self.period == secs:
                return f"{self.limit}/{unit}"
        return f"{self.limit}/{self.period:g}s"


def parse_rate(text: str, name: str = "") -> Rate:
    """Parse "N/s", "N/m" or "N/h" (the `[rate_limits]` syntax); N must be >= 1."""
    m = _RATE_RE.match(text)
    if m is None:
        raise ValueError(f"rate must look like '30/m', got {text!r}")
    return Rate(int(m.group(1)), float(_UNITS[m.group(2)]), name)


def rates_from_config(table: Mapping[str, object]) -> dict[str, Rate]:
    """Every "N/unit" string of a `[rate_limits]` table as a named `Rate`.

    Call with `settings.rate_limits.model_dump()`; non-rate entries (caps, backoff
    parameters) are skipped.
    """
    out: dict[str, Rate] = {}
    for key, value in table.items():
        if isinstance(value, str) and _RATE_RE.match(value):
            out[key] = parse_rate(value, key)
    return out


@dataclass(frozen=True, slots=True)
class Decision:
    """One rate-limit decision. Times are seconds; `retry_after` is 0 when allowed."""

    allowed: bool
    limit: int
    remaining: int
    reset_after: float
    retry_after: float
    policy: str
    window: float = 0.0
    key: str = ""

    @property
    def retry_after_s(self) -> int:
        """`retry_after` as Retry-After delay-seconds: rounded up, at least 1."""
        return max(1, math.ceil(self.retry_after))


class GcraStore(Protocol):
    """The part of `did_auth.core.ports.store.Store` the limiter needs."""

    async def gcra_many(
        self, buckets: Sequence[tuple[str, int, int, int]]
    ) -> list[tuple[int, int, int, int]]: ...


class RateLimitExceeded(RateLimited):
    """429 `slow_down` carrying the denying decision, so the HTTP layer can add headers."""

    def __init__(self, decision: Decision, *, description: str = "") -> None:
        super().__init__(
            description or "too many requests",
            retry_after=decision.retry_after_s,
            reason=f"rate_limited:{decision.policy}",
        )
        self.decision = decision

    @property
    def headers(self) -> dict[str, str]:
        return ratelimit_headers(self.decision)


def _decision(key: str, rate: Rate, res: tuple[int, int, int, int]) -> Decision:
    allowed, remaining, retry_ms, reset_ms = res
    if allowed:
        retry = 0.0
    elif retry_ms < 0:
        retry = rate.period  # cannot happen through RateLimiter (cost <= limit is checked)
    else:
        retry = retry_ms / 1000.0
    return Decision(
        allowed=bool(allowed),
        limit=rate.limit,
        remaining=max(0, remaining),
        reset_after=max(0.0, reset_ms / 1000.0),
        retry_after=retry,
        policy=rate.policy,
        window=rate.period,
        key=key,
    )


class RateLimiter:
    """Facade over a store's GCRA: one atomic store call per decision.

    Callers pass keys like `verify:ip:203.0.113.7`; the store key is
    `da:{rl:verify:ip:203.0.113.7}` (the project's prefix, one hash tag per bucket).
    """

    def __init__(self, store: GcraStore, *, prefix: str = KEY_PREFIX) -> None:
        self._store = store
        self._prefix = prefix

    def _bucket(self, key: str, rate: Rate, cost: int) -> tuple[str, int, int, int]:
        if cost < 0 or cost > rate.limit:
            raise ValueError(f"cost must be within 0..{rate.limit}")
        return (store_keys.rate_bucket(key, self._prefix), rate.period_ms, rate.limit, cost)

    async def hit(self, key: str, rate: Rate, cost: int = 1) -> Decision:
        """Charge `cost` units to `key` if they fit; never charges on a denial."""
        (res,) = await self._store.gcra_many([self._bucket(key, rate, cost)])
        return _decision(key, rate, res)

    async def peek(self, key: str, rate: Rate, cost: int = 1) -> Decision:
        """Would `cost` units fit now? Charges nothing (a GCRA call with cost 0)."""
        self._bucket(key, rate, cost)  # validates cost
        (res,) = await self._store.gcra_many([self._bucket(key, rate, 0)])
        d = _decision(key, rate, res)
        if d.remaining >= cost:
            return d
        # GCRA: `cost` units fit once TAT - now <= (limit - cost) * emission, and with cost 0
        # reset_after is exactly TAT - now.
        wait = d.reset_after - (rate.limit - cost) * rate.period / rate.limit
        return replace(d, allowed=False, retry_after=max(wait, 0.001))

    async def hit_all(
        self, buckets: Sequence[tuple[str, Rate]], cost: int = 1
    ) -> list[Decision]:
        """Charge every bucket or none, in one atomic store call (one Lua script)."""
        specs = [self._bucket(key, rate, cost) for key, rate in buckets]
        results = await self._store.gcra_many(specs) if specs else []
        return [
            _decision(key, rate, res)
            for (key, rate), res in zip(buckets, results, strict=True)
        ]


def _binding(decisions: Sequence[Decision]) -> Decision:
    denied = [d for d in decisions if not d.allowed]
    if denied:
        return max(denied, key=lambda d: d.retry_after)
    return min(decisions, key=lambda d: (d.remaining, -d.reset_after))


async def check_all(limiter: RateLimiter, buckets: Sequence[tuple[str, Rate]]) -> Decision:
    """Admit only if every bucket admits; a denial charges no bucket at all.

    All buckets are decided by one store call: on a single Redis one Lua script over all the
    keys (atomic); on Redis Cluster one script per slot, charged in order and refunded exactly
    when a later slot denies (each bucket stays exact; see `RedisStore.gcra_many`). Returns
    the binding decision: the denial with the longest wait, or when all admit the one with
    the least remaining.
    """
    if not buckets:
        raise ValueError("check_all needs at least one bucket")
    return _binding(await limiter.hit_all(buckets))


def enforce(decision: Decision) -> Decision:
    """Return an admitting decision; raise `RateLimitExceeded` (429) for a denial."""
    if not decision.allowed:
        raise RateLimitExceeded(decision)
    return decision


def _sf_string(value: str) -> str:
    if not _NAME_RE.match(value):
        raise ValueError("a policy name must be printable ASCII")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def ratelimit_headers(decision: Decision, name: str | None = None) -> dict[str, str]:
    """`RateLimit-Policy`, `RateLimit` (draft-ietf-httpapi-ratelimit-headers-11 syntax) and,
    on a denial, `Retry-After` for one decision; `name` overrides the policy name."""
    policy = _sf_string(name if name is not None else decision.policy)
    window = max(1, math.ceil(decision.window)) if decision.window > 0 else None
    pol = f"{policy};q={decision.limit}" + (f";w={window}" if window else "")
    if decision.allowed:
        t = max(0, math.ceil(decision.reset_after))
    else:
        t = decision.retry_after_s
    headers = {
        "RateLimit-Policy": pol,
        "RateLimit": f"{policy};r={max(0, decision.remaining)};t={t}",
    }
    if not decision.allowed:
        headers["Retry-After"] = str(decision.retry_after_s)
    return headers


@functools.lru_cache(maxsize=65536)
def client_ip_key(ip: str) -> str:
    """The rate-limit identity of a client IP: the address itself for IPv4, the /64 prefix
    for IPv6 (one host usually owns a whole /64, so per-address buckets would be free to
    multiply). IPv4-mapped IPv6 is reduced to IPv4. Unparseable input is returned as is."""
    try:
        addr = ipaddress.ip_address(ip.strip())
    except ValueError:
        return ip
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is not None:
            return str(addr.ipv4_mapped)
        return str(ipaddress.IPv6Network((addr, 64), strict=False))
    return str(addr)
