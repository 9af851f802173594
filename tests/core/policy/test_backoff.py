"""Backoff: failing sources are slowed down, victims are never locked out; OTP backs off."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from did_auth.adapters.store.memory import MemoryStore
from did_auth.adapters.store.redis import RedisStore
from did_auth.core.errors import RateLimited, TemporarilyUnavailable
from did_auth.core.policy.backoff import OtpBackoff, SourceBackoff
from did_auth.core.ports.store import Store
from tests.fixtures.redis_server import RedisServer, free_port
from tests.waits import wait_until_async

VICTIM = "0x52908400098527886E0F7030069857D2E4169EE7"
OTHER = "0x8617E340B3D01FA5F11F306F4090FD50E238070D"
ATTACKER_IP = "203.0.113.66"


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[Store]:
    if request.param == "memory":
        yield MemoryStore()
        return
    server: RedisServer = request.getfixturevalue("redis_server")
    s = RedisStore.from_url(server.url)
    await s.client.flushdb()
    yield s
    await s.close()


# -- failed proofs: back off the source, never the account --------------------------------


async def test_pair_backoff_never_locks_the_account_from_another_ip(store: Store) -> None:
    bo = SourceBackoff(store, ip_threshold=50, pair_threshold=5, base=30, cap=300)
    for _ in range(4):
        await bo.check(ATTACKER_IP, VICTIM)
        d = await bo.failure(ATTACKER_IP, VICTIM)
        assert d.allowed and d.delay == 0
    d = await bo.failure(ATTACKER_IP, VICTIM)  # 5th failure: the pair is backed off
    assert not d.allowed and d.delay == 30 and d.failures == 5
    with pytest.raises(RateLimited) as info:
        await bo.check(ATTACKER_IP, VICTIM)
    assert 29 <= info.value.retry_after <= 30 and info.value.reason == "source_backoff"
    # The account itself is untouched: the victim logs in from anywhere else...
    assert (await bo.check("198.51.100.20", VICTIM)).allowed
    # ...and the attacker IP may still try other accounts (below the IP threshold).
    assert (await bo.check(ATTACKER_IP, OTHER)).allowed
    # Case does not matter for addresses.
    with pytest.raises(RateLimited):
        await bo.check(ATTACKER_IP, VICTIM.lower())


async def test_spraying_from_many_ips_never_blocks_the_victim(store: Store) -> None:
    bo = SourceBackoff(store, ip_threshold=3, pair_threshold=2, base=60, cap=60)
    for i in range(30):
        ip = f"203.0.113.{i}"
        for _ in range(4):
            await bo.failure(ip, VICTIM)
        with pytest.raises(RateLimited):
            await bo.check(ip, VICTIM)
    assert (await bo.check("198.51.100.20", VICTIM)).allowed
    assert (await bo.check("198.51.100.20")).allowed


async def test_ip_threshold_blocks_the_ip_for_every_account(store: Store) -> None:
    bo = SourceBackoff(store, ip_threshold=6, pair_threshold=100, base=1, cap=4)
    bursts = []
    delays = []
    for i in range(9):
        d = await bo.failure(ATTACKER_IP, f"0x{i:040x}")
        bursts.append(d.burst)
        delays.append(d.delay)
    assert bursts.count(True) == 1 and bursts[5]  # signalled once, at the threshold
    assert delays == [0, 0, 0, 0, 0, 1, 2, 4, 4]  # exponential, capped
    with pytest.raises(RateLimited):
        await bo.check(ATTACKER_IP, OTHER)
    with pytest.raises(RateLimited):
        await bo.check(ATTACKER_IP)
    assert (await bo.check("198.51.100.20", OTHER)).allowed


async def test_ipv6_sources_are_grouped_by_64(store: Store) -> None:
    bo = SourceBackoff(store, ip_threshold=2, pair_threshold=100, base=60, cap=60)
    await bo.failure("2001:db8:1:2::1")
    await bo.failure("2001:db8:1:2::ffff")
    with pytest.raises(RateLimited):
        await bo.check("2001:db8:1:2:dead:beef::9")
    assert (await bo.check("2001:db8:1:3::1")).allowed


async def test_success_clears_the_pair_but_not_the_ip(store: Store) -> None:
    bo = SourceBackoff(store, ip_threshold=4, pair_threshold=3, base=0.2, cap=0.2)
    for _ in range(3):
        await bo.failure(ATTACKER_IP, VICTIM)
    with pytest.raises(RateLimited):
        await bo.check(ATTACKER_IP, VICTIM)
    await bo.success(ATTACKER_IP, VICTIM)
    assert (await bo.check(ATTACKER_IP, VICTIM)).allowed
    # The IP's count survived the success (3 so far): one more failure reaches its threshold.
    d = await bo.failure(ATTACKER_IP, OTHER)
    assert not d.allowed and d.burst
    with pytest.raises(RateLimited):
        await bo.check(ATTACKER_IP, VICTIM)

    async def allowed() -> bool:
        try:
            return (await bo.check(ATTACKER_IP, VICTIM)).allowed
        except RateLimited:
            return False

    # the block is a delay (0.2 s), not a lockout
    await wait_until_async(allowed, 5, what="the source's block to end")


# -- OTP: per account, exponential, capped, reset on success ------------------------------


async def test_otp_backoff_grows_exponentially_and_caps(store: Store) -> None:
    bo = OtpBackoff(store, base=0.2, cap=0.5, free_attempts=3)

    async def gate_open() -> bool:  # polled without attempting: a refused attempt is no guess
        return await store.ttl(f"da:{{bo:otp:{VICTIM.lower()}}}:g") is None

    for i in range(3):  # the free attempts are immediate
        d = await bo.attempt(VICTIM)
        assert d.allowed and d.delay == 0 and d.failures == i
    delays = []
    for _ in range(4):
        d = await bo.attempt(VICTIM)
        delays.append(d.delay)
        with pytest.raises(RateLimited) as info:  # the next one has to wait
            await bo.attempt(VICTIM)
        assert info.value.reason == "otp_backoff" and info.value.retry_after >= 1
        await wait_until_async(gate_open, 5, what="the OTP gate to open")
    # base * 2**k, capped; attempts refused at the gate are not guesses and do not count.
    assert delays == pytest.approx([0.2, 0.4, 0.5, 0.5])
    assert await bo.failures(VICTIM) == 7


async def test_otp_backoff_doubles_per_failure(store: Store) -> None:
    bo = OtpBackoff(store, base=1.0, cap=1000, free_attempts=1)
    assert (await bo.attempt(VICTIM)).delay == 0
    assert (await bo.attempt(VICTIM)).delay == 1.0  # attempt 2: gate closes for 1 s
    with pytest.raises(RateLimited):
        await bo.attempt(VICTIM)  # refused at the gate: not a guess, not counted
    for expected in (2.0, 4.0, 8.0):
        await store.delete(f"da:{{bo:otp:{VICTIM.lower()}}}:g")  # as if the delay had passed
        assert (await bo.attempt(VICTIM)).delay == expected
    assert await bo.failures(OTHER) == 0


async def test_otp_backoff_resets_on_success(store: Store) -> None:
    bo = OtpBackoff(store, base=60, cap=900, free_attempts=2)
    await bo.attempt(VICTIM)
    await bo.attempt(VICTIM)
    await bo.attempt(VICTIM)
    with pytest.raises(RateLimited) as info:
        await bo.attempt(VICTIM)
    assert 59 <= info.value.retry_after <= 60
    # Another account is unaffected.
    assert (await bo.attempt(OTHER)).allowed
    await bo.success(VICTIM)
    assert await bo.failures(VICTIM) == 0
    for _ in range(2):
        assert (await bo.attempt(VICTIM)).delay == 0


async def test_otp_parallel_guesses_cannot_slip_through(store: Store) -> None:
    bo = OtpBackoff(store, base=60, cap=900, free_attempts=3)

    async def guess() -> bool:
        try:
            await bo.attempt(VICTIM)
            return True
        except RateLimited:
            return False

    results = await asyncio.gather(*[guess() for _ in range(50)])
    assert sum(results) == 4  # the 3 free attempts and one gated attempt


async def test_backoff_fails_closed_when_redis_is_down() -> None:
    s = RedisStore.from_url(f"redis://127.0.0.1:{free_port()}/0", timeout=0.5)
    with pytest.raises(TemporarilyUnavailable):
        await SourceBackoff(s).check(ATTACKER_IP, VICTIM)
    with pytest.raises(TemporarilyUnavailable):
        await OtpBackoff(s).attempt(VICTIM)
    await s.close()


def test_parameters_are_validated() -> None:
    with pytest.raises(ValueError):
        SourceBackoff(MemoryStore(), pair_threshold=0)
    with pytest.raises(ValueError):
        OtpBackoff(MemoryStore(), base=0)
