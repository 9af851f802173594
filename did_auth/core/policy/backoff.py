"""Backoff after failures, without handing attackers a lockout weapon.

- `SourceBackoff`: failed wallet/DID proofs. A signature cannot be guessed, so failures only
  cost us work (recovery, EIP-1271 RPC calls); they must never let an attacker lock a victim
  out. We back off the failing *source*, the client IP and the (IP, account) pair, and
  never the account alone: from any other IP the account logs in as usual.
- `OtpBackoff`: step-up OTP codes can be guessed (10^6 codes), so here the account itself is
  backed off, with exponential delays capped at `cap`, reset on success. Attempts are counted
  *before* the code is checked (pessimistic accounting), so parallel guesses cannot slip in
  between a check and a failure record: at most `free_attempts` go through at once, then
  one attempt per delay.

Both are built only on the store contract's counters (`incr`, `ttl`, `put(nx)`, `delete`),
so they are shared by all replicas through Redis and fail closed (`TemporarilyUnavailable`)
when the store is down. A refusal raises `did_auth.core.errors.RateLimited(retry_after=...)`.
"""

from __future__ import annotations

import math
from dataclasses import KW_ONLY, dataclass
from typing import Protocol

from did_auth.core.errors import RateLimited
from did_auth.core.policy.ratelimit import client_ip_key
from did_auth.core.ports import store_keys

__all__ = ["BackoffDecision", "BackoffStore", "OtpBackoff", "SourceBackoff"]

_MAX_EXP = 40


class BackoffStore(Protocol):
    """The part of `did_auth.core.ports.store.Store` backoff needs."""

    async def put(self, key: str, value: bytes, ttl: float, *, nx: bool = False) -> bool: ...

    async def delete(self, *keys: str) -> int: ...

    async def incr(self, key: str, ttl: float) -> int: ...

    async def ttl(self, key: str) -> float | None: ...

    async def get(self, key: str) -> bytes | None: ...


@dataclass(frozen=True, slots=True)
class BackoffDecision:
    """`failures`: failures counted so far in the window; `delay`: backoff now imposed (s);
    `burst`: True exactly once, when the IP's failures reach the threshold (an anomaly
    signal: emit `signature_failure_burst` then)."""

    allowed: bool
    failures: int
    delay: float = 0.0
    retry_after: float = 0.0
    burst: bool = False


def _delay(base: float, cap: float, exponent: int) -> float:
    return float(min(cap, base * 2 ** min(max(exponent, 0), _MAX_EXP)))


def _raise(retry_after: float, reason: str) -> None:
    raise RateLimited(
        "too many failed attempts, retry later",
        retry_after=max(1, math.ceil(retry_after)),
        reason=reason,
    )


def _account(account: str) -> str:
    return account.strip().lower()


@dataclass(eq=False)
class _Backoff:
    """What both backoffs share: their store, delays of `base * 2**k` seconds capped at
    `cap`, failure counters that live `window` seconds, and the store's key prefix."""

    store: BackoffStore
    _: KW_ONLY
    base: float = 1.0
    cap: float = 300.0
    window: float = 900.0
    prefix: str = store_keys.PREFIX

    def __post_init__(self) -> None:
        if min(self.base, self.cap, self.window) <= 0:
            raise ValueError("backoff times must be positive")


@dataclass(eq=False, kw_only=True)
class SourceBackoff(_Backoff):
    """Back off a failing source: the IP, and the (IP, account) pair; never the account.

    After `pair_threshold` failures of one IP against one account (or `ip_threshold`
    failures of one IP overall) within `window` seconds, that source is blocked for
    `base * 2**(failures - threshold)` seconds, capped at `cap`. Success clears the pair's
    counter but not the IP's (else an attacker could launder its IP by logging in to its own
    account between sprays).
    """

    ip_threshold: int = 20
    pair_threshold: int = 5

    def __post_init__(self) -> None:
        super().__post_init__()
        if min(self.ip_threshold, self.pair_threshold) < 1:
            raise ValueError("backoff thresholds must be positive")

    def _keys(self, ip: str, account: str | None) -> list[tuple[str, str, int]]:
        """(failure counter, block marker, threshold) per source scope."""
        ipk = client_ip_key(ip)
        scopes = [(f"ip:{ipk}", self.ip_threshold)]
        if account:
            scopes.append((f"pair:{ipk}:{_account(account)}", self.pair_threshold))
        return [(*store_keys.backoff_scope(s, self.prefix), t) for s, t in scopes]

    async def check(self, ip: str, account: str | None = None) -> BackoffDecision:
        """Before verifying a proof: raise `RateLimited` while the IP or the (IP, account)
        pair is backed off; `account` is the address/DID the proof claims (unverified is
        fine: the pair only ever blocks this IP)."""
        wait = 0.0
        for _f, block, _t in self._keys(ip, account):
            left = await self.store.ttl(block)
            if left is not None:
                wait = max(wait, left)
        if wait > 0:
            _raise(wait, "source_backoff")
        return BackoffDecision(allowed=True, failures=0)

    async def failure(self, ip: str, account: str | None = None) -> BackoffDecision:
        """After a failed proof: count it; block the source once past its threshold."""
        delay = 0.0
        failures = 0
        burst = False
        for i, (counter, block, threshold) in enumerate(self._keys(ip, account)):
            n = await self.store.incr(counter, self.window)
            failures = max(failures, n)
            if i == 0 and n == threshold:
                burst = True
            if n >= threshold:
                d = _delay(self.base, self.cap, n - threshold)
                await self.store.put(block, b"1", d)
                delay = max(delay, d)
        return BackoffDecision(
            allowed=delay == 0, failures=failures, delay=delay, retry_after=delay, burst=burst
        )

    async def success(self, ip: str, account: str) -> None:
        """After a verified login: forget the (IP, account) pair's failures only."""
        keys = self._keys(ip, account)[1]
        await self.store.delete(keys[0], keys[1])


@dataclass(eq=False, kw_only=True)
class OtpBackoff(_Backoff):
    """Per-account exponential backoff for guessable second factors (OTP step-up).

    Call `attempt(account)` *before* checking a code: it counts the attempt as a failure and
    raises `RateLimited` when the account is in backoff. The first `free_attempts` attempts
    in `window` seconds are immediate; attempt `free_attempts + k` (k >= 1) is admitted alone
    and closes a gate for `base * 2**(k-1)` seconds (capped at `cap`) before the next one.
    Requests refused at the closed gate never see a code, so they are not counted: the
    delays follow the guesses actually made. Call `success(account)` when the code was
    right: it resets everything. The counter lives `window` seconds from the first failure.
    """

    cap: float = 900.0
    window: float = 3600.0
    free_attempts: int = 3

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.free_attempts < 0:
            raise ValueError("free_attempts must not be negative")

    def _keys(self, account: str) -> tuple[str, str]:
        a = _account(account)
        return store_keys.backoff_otp(a, self.prefix)

    async def attempt(self, account: str) -> BackoffDecision:
        """Admit one OTP attempt for `account` or raise `RateLimited(retry_after=...)`."""
        counter, gate = self._keys(account)
        left = await self.store.ttl(gate)
        if left is not None:
            _raise(left, "otp_backoff")
        n = await self.store.incr(counter, self.window)
        if n <= self.free_attempts:
            return BackoffDecision(allowed=True, failures=n - 1)
        delay = _delay(self.base, self.cap, n - self.free_attempts - 1)
        if not await self.store.put(gate, b"1", delay, nx=True):
            # Another attempt won this slot at the same moment.
            _raise(await self.store.ttl(gate) or delay, "otp_backoff")
        return BackoffDecision(allowed=True, failures=n - 1, delay=delay)

    async def success(self, account: str) -> None:
        """The code was right: reset the account's counter and gate."""
        await self.store.delete(*self._keys(account))

    async def failures(self, account: str) -> int:
        """Attempts counted in the current window (for audit/metrics), 0 if none."""
        raw = await self.store.get(self._keys(account)[0])
        return int(raw) if raw is not None else 0
