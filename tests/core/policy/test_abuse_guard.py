"""The abuse guard at the decision points, without HTTP: rate limits per IP / subject /
client, caps on outstanding nonces, source backoff for failed proofs and the burst signal.
The in-memory store runs on the injected clock, so refills and delays pass in no real time."""

from __future__ import annotations

from typing import Any

import pytest

from did_auth.adapters.monitoring.audit import AuditLog
from did_auth.adapters.monitoring.metrics import METRICS
from did_auth.adapters.store.memory import MemoryStore
from did_auth.core.clock import FixedClock
from did_auth.core.errors import RateLimited
from did_auth.core.flows.guard import RequestContext
from did_auth.core.policy.abuse import AbuseGuard
from tests.core.flows.core import T0
from tests.core.flows.core import settings as settings_for

VICTIM = "0x52908400098527886E0F7030069857D2E4169EE7"
OTHER = "0x8617E340B3D01FA5F11F306F4090FD50E238070D"
ATTACKER = RequestContext(ip="203.0.113.66", request_id="r-1")
HONEST = RequestContext(ip="198.51.100.20")


def _guard(**limits: Any) -> tuple[AbuseGuard, FixedClock, AuditLog]:
    clock = FixedClock(T0)
    audit = AuditLog.memory(clock=clock.now)
    settings = settings_for(rate_limits=limits)
    return AbuseGuard(settings, MemoryStore(monotonic=clock.now), audit, METRICS), clock, audit


async def _limited(coro: Any) -> RateLimited:
    with pytest.raises(RateLimited) as err:
        await coro
    return err.value


async def test_nonces_per_ip_refill_at_the_rate() -> None:
    guard, clock, _ = _guard(nonce_per_ip="3/m")
    for _ in range(3):
        await guard.nonce_request(ATTACKER)
    denied = await _limited(guard.nonce_request(ATTACKER))
    assert denied.retry_after == 20 and denied.code == "slow_down"
    await guard.nonce_request(HONEST)  # another IP has its own bucket
    await guard.nonce_request(ATTACKER, kind="challenge")  # DID challenges: their own budget
    clock.advance(19.9)
    await _limited(guard.nonce_request(ATTACKER))
    clock.advance(0.1)  # one unit every 20 s
    await guard.nonce_request(ATTACKER)
    await _limited(guard.nonce_request(ATTACKER))


async def test_ipv6_sources_share_their_64() -> None:
    guard, _, _ = _guard(verify_per_ip="1/h")
    await guard.verify_request(RequestContext(ip="2001:db8:1:2::1"))
    await _limited(guard.verify_request(RequestContext(ip="2001:db8:1:2:ffff::9")))
    await guard.verify_request(RequestContext(ip="2001:db8:1:3::1"))


async def test_outstanding_nonces_are_capped_per_client_and_ip() -> None:
    guard, clock, _ = _guard(outstanding_nonces_per_ip=2)
    await guard.hold_nonce(ATTACKER, "dapp", "n1")
    await guard.hold_nonce(ATTACKER, "dapp", "n2")
    denied = await _limited(guard.hold_nonce(ATTACKER, "dapp", "n3"))
    assert denied.reason == "outstanding_nonces" and denied.retry_after == 30
    await guard.hold_nonce(HONEST, "dapp", "n3")  # another IP
    await guard.hold_nonce(ATTACKER, "other", "n3")  # another client
    await guard.release_nonce(ATTACKER, "dapp", "n1")  # a used nonce frees its slot
    await guard.hold_nonce(ATTACKER, "dapp", "n3")
    await _limited(guard.hold_nonce(ATTACKER, "dapp", "n4"))
    clock.advance(300)  # nonce_ttl: held nonces have expired with their slots
    await guard.hold_nonce(ATTACKER, "dapp", "n4")
    await guard.hold_nonce(ATTACKER, "dapp", "n5")


async def test_failed_proofs_back_off_the_source_never_the_account() -> None:
    guard, clock, _ = _guard(source_backoff_pair_threshold=3, source_backoff_ip_threshold=50)
    for _ in range(3):
        await guard.before_proof(ATTACKER, "dapp", VICTIM)
        await guard.proof_failed(ATTACKER, "dapp", VICTIM)
    denied = await _limited(guard.before_proof(ATTACKER, "dapp", VICTIM))
    assert denied.reason == "source_backoff" and denied.retry_after == 1
    # one wallet is one account: the same EOA as did:pkh on another chain or as did:ethr
    await _limited(guard.before_proof(ATTACKER, "dapp", f"did:pkh:eip155:1:{VICTIM}"))
    await _limited(guard.before_proof(ATTACKER, "dapp", f"did:ethr:{VICTIM.lower()}"))
    # the victim, from anywhere else, is not locked out; the attacker may try others
    await guard.before_proof(HONEST, "dapp", VICTIM)
    await guard.before_proof(ATTACKER, "dapp", OTHER)
    clock.advance(1)  # the block is a delay (base 1 s), not a lockout
    await guard.before_proof(ATTACKER, "dapp", VICTIM)
    await guard.proof_failed(ATTACKER, "dapp", VICTIM)  # 4th: 2 s now
    assert (await _limited(guard.before_proof(ATTACKER, "dapp", VICTIM))).retry_after == 2


async def test_a_verified_proof_clears_the_pair() -> None:
    guard, _, _ = _guard(source_backoff_pair_threshold=2, source_backoff_ip_threshold=50)
    await guard.proof_failed(HONEST, "dapp", VICTIM)  # a typo, once
    await guard.proof_verified(HONEST, "dapp", f"did:pkh:eip155:1:{VICTIM}")
    await guard.proof_failed(HONEST, "dapp", VICTIM)  # counted from zero again
    await guard.before_proof(HONEST, "dapp", VICTIM)


async def test_a_burst_of_failures_from_one_ip_is_signalled_once() -> None:
    guard, _, audit = _guard(source_backoff_ip_threshold=5, source_backoff_pair_threshold=50)
    for i in range(8):
        await guard.proof_failed(ATTACKER, "dapp", f"0x{i:040x}")
    (burst,) = [r for r in audit.records if r["event"] == "signature_failure_burst"]
    assert burst["ip"] == ATTACKER.ip and burst["failures"] == 5
    assert burst["request_id"] == "r-1" and burst["client_id"] == "dapp"
    await _limited(guard.before_proof(ATTACKER, "dapp", f"0x{99:040x}"))  # the whole IP


async def test_the_subject_budget_is_charged_only_for_verified_proofs() -> None:
    guard, clock, _ = _guard(verify_per_subject="2/m")
    for _ in range(10):  # failures never spend the account's budget
        await guard.proof_failed(ATTACKER, "dapp", VICTIM)
    await guard.proof_verified(HONEST, "dapp", f"did:pkh:eip155:1:{VICTIM}")
    await guard.proof_verified(HONEST, "dapp", f"did:pkh:eip155:31337:{VICTIM}")
    # one wallet is one subject: the third verified login on any chain is over budget
    denied = await _limited(guard.proof_verified(HONEST, "dapp", f"did:ethr:{VICTIM}"))
    assert denied.retry_after == 30
    await guard.proof_verified(HONEST, "dapp", OTHER)
    clock.advance(30)
    await guard.proof_verified(HONEST, "dapp", VICTIM)


async def test_token_endpoint_budgets() -> None:
    guard, clock, _ = _guard(refresh_per_ip="2/m", token_per_client="1/m",
                             introspect_per_client="1/m")
    # per IP before client authentication (failed authentications are budgeted too)
    await guard.endpoint_source(ATTACKER, "token")
    await guard.endpoint_source(ATTACKER, "token")
    await _limited(guard.endpoint_source(ATTACKER, "token"))
    await guard.endpoint_source(ATTACKER, "revoke")  # /revoke has its own bucket
    # per authenticated client, per endpoint
    await guard.endpoint_client("dapp", "token")
    await _limited(guard.endpoint_client("dapp", "token"))
    await guard.endpoint_client("dapp", "revoke")
    await guard.endpoint_client("vault", "token")
    await guard.introspect_request("rs")
    await _limited(guard.introspect_request("rs"))
    clock.advance(60)
    await guard.endpoint_client("dapp", "token")
    await guard.introspect_request("rs")
