"""Backoff delays and windows on the injected clock (the in-memory store's expiry runs on
it): exact exponential delays and caps, and counters that live `window` seconds, checked in
no real time. The same rules against a real Redis are in test_backoff.py."""

from __future__ import annotations

import pytest

from did_auth.adapters.store.memory import MemoryStore
from did_auth.core.clock import FixedClock
from did_auth.core.errors import RateLimited
from did_auth.core.policy.backoff import OtpBackoff, SourceBackoff
from tests.core.flows.core import T0

VICTIM = "0x52908400098527886E0F7030069857D2E4169EE7"
IP = "203.0.113.66"


def _clock_store() -> tuple[FixedClock, MemoryStore]:
    clock = FixedClock(T0)
    return clock, MemoryStore(monotonic=clock.now)


async def _wait_of(coro: object) -> int:
    with pytest.raises(RateLimited) as err:
        await coro  # type: ignore[misc]
    return err.value.retry_after


async def test_source_delays_double_per_failure_up_to_the_cap() -> None:
    clock, store = _clock_store()
    bo = SourceBackoff(store, ip_threshold=100, pair_threshold=3, base=1, cap=8, window=900)
    delays = []
    for _ in range(7):
        d = await bo.failure(IP, VICTIM)
        delays.append(d.delay)
        if d.delay:
            assert await _wait_of(bo.check(IP, VICTIM)) == d.delay
            clock.advance(d.delay - 0.5)
            assert await _wait_of(bo.check(IP, VICTIM)) == 1  # (rounded up to a second)
            clock.advance(0.5)
        assert (await bo.check(IP, VICTIM)).allowed
    assert delays == [0, 0, 1, 2, 4, 8, 8]


async def test_source_failures_are_counted_within_the_window() -> None:
    clock, store = _clock_store()
    bo = SourceBackoff(store, ip_threshold=100, pair_threshold=3, base=1, cap=8, window=900)
    await bo.failure(IP, VICTIM)
    await bo.failure(IP, VICTIM)
    clock.advance(899)
    assert (await bo.failure(IP, VICTIM)).delay == 1  # the 3rd within 900 s
    clock.advance(1)  # 900 s after the first failure: the count starts again
    d = await bo.failure(IP, VICTIM)
    assert d.failures == 1 and d.delay == 0


async def test_otp_delays_and_window() -> None:
    clock, store = _clock_store()
    bo = OtpBackoff(store, base=2, cap=16, free_attempts=2, window=3600)
    assert [(await bo.attempt(VICTIM)).delay for _ in range(2)] == [0, 0]
    delays = []
    for _ in range(5):
        d = await bo.attempt(VICTIM)
        delays.append(d.delay)
        assert await _wait_of(bo.attempt(VICTIM)) == d.delay  # refused at the gate ...
        clock.advance(d.delay)
    assert delays == [2, 4, 8, 16, 16]
    assert await bo.failures(VICTIM) == 7  # ... and not counted as guesses
    clock.advance(3600)  # the counter lives an hour from the first failure
    assert await bo.failures(VICTIM) == 0
    assert [(await bo.attempt(VICTIM)).delay for _ in range(3)] == [0, 0, 2]
