"""TOTP second factor (RFC 6238) without HTTP: codes, single use, drift, backoff and the
pending enrolment's TTL, all on the injected clock and the in-memory store."""

from __future__ import annotations

import base64

import orjson
import pyotp
import pytest

from did_auth.core.errors import AccessDenied, InvalidGrant, InvalidRequest, RateLimited
from did_auth.core.flows.otp import OtpService
from tests.core.flows.core import Core, make_core

ADDR = "0x52908400098527886E0F7030069857D2E4169EE7"
SUB = f"did:pkh:eip155:1:{ADDR}"


def code(secret: str, core: Core, offset: float = 0) -> str:
    return pyotp.TOTP(secret).at(core.clock.now() + offset)


async def enrolled(core: Core, sub: str = SUB) -> str:
    """Enrol and confirm; the secret. The clock moves to the next time step, so that the
    confirming code is not the one a test uses next."""
    e = await core.otp.enroll(sub)
    await core.otp.confirm(sub, code(e.secret, core))
    core.clock.advance(30)
    return e.secret


async def _invalid(coro: object) -> str | None:
    with pytest.raises(InvalidGrant) as err:
        await coro  # type: ignore[misc]
    return err.value.reason


async def test_enrol_confirm_verify() -> None:
    core = await make_core()
    assert not await core.otp.enrolled(SUB)
    e = await core.otp.enroll(SUB)
    assert e.uri.startswith("otpauth://totp/") and "issuer=did-auth" in e.uri
    assert not await core.otp.enrolled(SUB)  # pending until confirmed
    confirmed = await core.otp.confirm(SUB, code(e.secret, core))
    assert not confirmed.replaced and confirmed.method == "fresh_login"
    assert await core.otp.enrolled(SUB)
    core.clock.advance(30)
    await core.otp.verify(SUB, code(e.secret, core))


async def test_the_secret_is_sealed_in_the_store() -> None:
    core = await make_core()
    e = await core.otp.enroll(SUB)
    (pending,) = [raw for key, (raw, _) in core.store._data.items() if key.endswith(":pending")]
    assert e.secret.encode() not in pending and base64.b32decode(e.secret) not in pending
    await core.otp.confirm(SUB, code(e.secret, core))
    (active,) = [raw for key, (raw, _) in core.store._data.items() if key.endswith(":secret")]
    rec = orjson.loads(active)
    assert rec["active"] and e.secret not in active.decode() and rec["aad"] == "eip155:" + ADDR.lower()


async def test_a_code_is_accepted_once() -> None:
    core = await make_core()
    secret = await enrolled(core)
    c = code(secret, core)
    await core.otp.verify(SUB, c)
    # RFC 6238 §5.2: the verifier MUST NOT accept the second attempt of the same OTP
    assert await _invalid(core.otp.verify(SUB, c)) == "otp_invalid"
    # ... nor an earlier step's code once a later one was used
    core.clock.advance(30)
    await core.otp.verify(SUB, code(secret, core))
    assert await _invalid(core.otp.verify(SUB, code(secret, core, -30))) == "otp_invalid"


async def test_one_step_of_drift_either_way() -> None:
    core = await make_core()
    secret = await enrolled(core)
    core.clock.advance(30)  # (the confirming code's step is used: two steps on)
    await core.otp.verify(SUB, code(secret, core, -30))  # the previous step
    core.clock.advance(60)
    await core.otp.verify(SUB, code(secret, core, +30))  # the next step
    core.clock.advance(120)
    assert await _invalid(core.otp.verify(SUB, code(secret, core, -60))) == "otp_invalid"
    assert await _invalid(core.otp.verify(SUB, code(secret, core, +60))) == "otp_invalid"


async def test_malformed_codes() -> None:
    core = await make_core()
    await enrolled(core)
    for bad in (None, 123456, "12345", "1234567", "12345a", " 12345"):
        assert await _invalid(core.otp.verify(SUB, bad)) == "otp_invalid"
        await core.otp._backoff.success("eip155:" + ADDR.lower())  # (not the point here)


async def test_verify_without_a_factor() -> None:
    core = await make_core()
    with pytest.raises(AccessDenied) as err:
        await core.otp.verify(SUB, "123456")
    assert err.value.reason == "otp_missing"


async def test_one_wallet_one_factor_across_chains_and_methods() -> None:
    core = await make_core()
    secret = await enrolled(core)
    for other in (f"did:pkh:eip155:31337:{ADDR}", f"did:ethr:{ADDR.lower()}", ADDR.lower()):
        assert await core.otp.enrolled(other)
        with pytest.raises(InvalidRequest):  # already enrolled for this account
            await core.otp.enroll(other)
    await core.otp.verify(f"did:ethr:{ADDR}", code(secret, core))


async def test_the_pending_enrolment_expires_after_15_minutes() -> None:
    core = await make_core()
    e = await core.otp.enroll(SUB)
    core.clock.advance(900)
    with pytest.raises(InvalidRequest, match="no pending enrolment"):
        await core.otp.confirm(SUB, code(e.secret, core))
    assert not await core.otp.enrolled(SUB)


async def test_a_wrong_confirmation_code_keeps_the_enrolment_pending() -> None:
    core = await make_core()
    e = await core.otp.enroll(SUB)
    wrong = f"{(int(code(e.secret, core)) + 1) % 1_000_000:06d}"
    assert await _invalid(core.otp.confirm(SUB, wrong)) == "otp_invalid"
    await core.otp.confirm(SUB, code(e.secret, core))


async def test_replacing_needs_replace_and_takes_the_new_secret() -> None:
    core = await make_core()
    old = await enrolled(core)
    with pytest.raises(InvalidRequest):
        await core.otp.enroll(SUB)
    e = await core.otp.enroll(SUB, replace=True, method="current_otp")
    # until confirmed the old factor stays the active one
    await core.otp.verify(SUB, code(old, core))
    core.clock.advance(30)
    confirmed = await core.otp.confirm(SUB, code(e.secret, core))
    assert confirmed.replaced and confirmed.method == "current_otp"
    core.clock.advance(30)
    assert await _invalid(core.otp.verify(SUB, code(old, core))) == "otp_invalid"
    await core.otp.verify(SUB, code(e.secret, core))


async def test_failures_back_off_the_account_and_success_resets() -> None:
    core = await make_core()  # otp_free_attempts 3, base 2 s, cap 900 s
    secret = await enrolled(core)
    wrong = "000000" if code(secret, core) != "000000" else "111111"
    for _ in range(3):  # free attempts
        assert await _invalid(core.otp.verify(SUB, wrong)) == "otp_invalid"
    # the 4th attempt is admitted alone and closes the gate for 2 s
    assert await _invalid(core.otp.verify(SUB, wrong)) == "otp_invalid"
    with pytest.raises(RateLimited) as err:
        await core.otp.verify(SUB, code(secret, core))  # even the right code waits
    assert err.value.reason == "otp_backoff" and err.value.retry_after == 2
    core.clock.advance(2)
    assert await _invalid(core.otp.verify(SUB, wrong)) == "otp_invalid"  # 5th: gate 4 s
    core.clock.advance(3)
    with pytest.raises(RateLimited) as err:
        await core.otp.verify(SUB, wrong)
    assert err.value.retry_after == 1
    core.clock.advance(1)
    await core.otp.verify(SUB, code(secret, core))  # right: resets the account
    core.clock.advance(30)
    for _ in range(3):
        assert await _invalid(core.otp.verify(SUB, wrong)) == "otp_invalid"


async def test_another_account_is_not_backed_off() -> None:
    core = await make_core()
    other = "did:pkh:eip155:1:0x8617E340B3D01FA5F11F306F4090FD50E238070D"
    await enrolled(core)
    secret = await enrolled(core, other)
    for _ in range(4):
        await _invalid(core.otp.verify(SUB, "000000"))
    with pytest.raises(RateLimited):
        await core.otp.verify(SUB, "000000")
    await core.otp.verify(other, code(secret, core))


async def test_a_legacy_factor_keyed_by_subject_is_adopted() -> None:
    core = await make_core()
    # stored before one key per wallet: keyed by the subject as it logged in, sealed with it
    secret = pyotp.random_base32()
    sealed = core.sealer.seal(secret.encode(), SUB.encode())
    legacy = {"active": True, "sealed": base64.b64encode(sealed).decode(), "last_step": -1}
    await core.store.put(f"da:{{otp:{SUB}}}:secret", orjson.dumps(legacy), 3600)
    assert not await core.otp.enrolled(f"did:ethr:{ADDR}")  # not found under another name
    assert await core.otp.enrolled(SUB)  # adopted when its own subject comes back ...
    assert await core.otp.enrolled(f"did:ethr:{ADDR}")  # ... as the account's factor
    await core.otp.verify(f"did:ethr:{ADDR}", code(secret, core))


def test_a_service_without_backoff_builds_its_own() -> None:
    from did_auth.adapters.store.memory import MemoryStore
    from did_auth.core.clock import FixedClock
    from did_auth.core.tokens.kek import Sealer

    svc = OtpService(MemoryStore(), Sealer(b"k" * 32), FixedClock(0), issuer_name="x")
    assert svc._backoff.free_attempts == 3


async def test_enrolment_failures_spare_the_login_step_up_budget() -> None:
    from did_auth.core.did.accounts import account_key

    core = await make_core()
    secret = await enrolled(core)
    pending = await core.otp.enroll(SUB, replace=True, method="current_otp")
    wrong = f"{(int(code(secret, core)) + 500_000) % 1_000_000:06d}"
    for _ in range(4):  # the free attempts of each budget, and the one that closes its gate
        assert await _invalid(core.otp.verify_for_enrolment(SUB, wrong, sid="0xaa")) == "otp_invalid"
        assert await _invalid(core.otp.confirm(SUB, wrong, sid="0xbb")) == "otp_invalid"
    with pytest.raises(RateLimited):  # the session's budget
        await core.otp.confirm(SUB, wrong, sid="0xbb")
    with pytest.raises(RateLimited):  # the account's enrolment budget, from any session
        await core.otp.verify_for_enrolment(SUB, wrong, sid="0xcc")
    assert await core.otp._backoff.failures(account_key(SUB)) == 0
    await core.otp.verify(SUB, code(secret, core))  # login step-up is not held back
    await core.otp.confirm(SUB, code(pending.secret, core), sid="0xdd")  # another session
