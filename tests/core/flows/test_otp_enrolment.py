"""Who may enrol or replace a second factor, without HTTP: a fresh login (OIDC Core
`auth_time`, RFC 9470 `max_age`) for the first one; the current factor or a wallet signature
for this purpose (EIP-4361) to replace it. Injected clock, in-memory store."""

from __future__ import annotations

from typing import Any

import pyotp
import pytest

from did_auth.core.errors import (
    AccessDenied,
    InsufficientUserAuthentication,
    InvalidGrant,
    InvalidRequest,
)
from did_auth.core.flows.otp_enrolment import (
    REENROL_RESOURCE,
    REENROL_STATEMENT,
    OtpEnrolment,
    OtpEnrolRequest,
)
from did_auth.core.flows.signatures import EoaSignatureChecker
from tests import siwe_text
from tests.core.flows.core import Core, make_core

MAX_AGE = 300  # Settings.step_up_max_age default


async def _env() -> tuple[Core, OtpEnrolment, str, bytes, str]:
    core = await make_core()
    enrolment = OtpEnrolment(settings=core.settings, clock=core.clock, otp=core.otp,
                             nonces=core.nonces, signatures=EoaSignatureChecker())
    address, key = siwe_text.new_account()
    return core, enrolment, address, key, f"did:pkh:eip155:31337:{address}"


def _req(core: Core, sub: str, *, age: float = 0, **kw: Any) -> OtpEnrolRequest:
    return OtpEnrolRequest(sub=sub, client_id="dapp", auth_time=core.clock.now() - age, **kw)


async def _enrol_first(core: Core, enrolment: OtpEnrolment, sub: str) -> str:
    e, method, replaces = await enrolment.enroll(_req(core, sub))
    assert (method, replaces) == ("fresh_login", False)
    await core.otp.confirm(sub, pyotp.TOTP(e.secret).at(core.clock.now()))
    core.clock.advance(30)
    return e.secret


async def _proof(core: Core, address: str, key: bytes, **over: Any) -> dict[str, str]:
    over.setdefault("statement", REENROL_STATEMENT)
    over.setdefault("resources", [REENROL_RESOURCE])
    text = core.siwe_text(address, await core.nonces.issue("dapp"), **over)
    return {"message": text, "signature": siwe_text.sign(text, key)}


async def test_the_first_factor_needs_a_fresh_login() -> None:
    core, enrolment, _, _, sub = await _env()
    with pytest.raises(InsufficientUserAuthentication) as err:
        await enrolment.enroll(_req(core, sub, age=MAX_AGE + 1))
    assert err.value.max_age == MAX_AGE and err.value.reason == "login_too_old"
    _, method, replaces = await enrolment.enroll(_req(core, sub, age=MAX_AGE))
    assert (method, replaces) == ("fresh_login", False)


async def test_without_a_factor_an_otp_cannot_be_checked() -> None:
    core, enrolment, _, _, sub = await _env()
    with pytest.raises(InvalidRequest, match="no second factor"):
        await enrolment.enroll(_req(core, sub, otp="123456"))


async def test_otp_and_siwe_together_are_refused() -> None:
    core, enrolment, address, key, sub = await _env()
    with pytest.raises(InvalidRequest, match="either"):
        await enrolment.enroll(_req(core, sub, otp="123456",
                                    siwe=await _proof(core, address, key)))


async def test_a_fresh_login_alone_cannot_replace_a_factor() -> None:
    core, enrolment, _, _, sub = await _env()
    await _enrol_first(core, enrolment, sub)
    with pytest.raises(AccessDenied) as err:
        await enrolment.enroll(_req(core, sub))
    assert err.value.reason == "second_factor_required"


async def test_the_current_factor_replaces_it() -> None:
    core, enrolment, _, _, sub = await _env()
    secret = await _enrol_first(core, enrolment, sub)
    # any login age: the current factor is the authority here
    e, method, replaces = await enrolment.enroll(
        _req(core, sub, age=10 * MAX_AGE, otp=pyotp.TOTP(secret).at(core.clock.now())))
    assert (method, replaces) == ("current_otp", True) and e.secret != secret
    with pytest.raises(InvalidGrant):  # a wrong current code
        await enrolment.enroll(_req(core, sub, otp="000000" if pyotp.TOTP(secret).at(
            core.clock.now()) != "000000" else "111111"))


async def test_a_wallet_signature_for_this_purpose_replaces_a_lost_factor() -> None:
    core, enrolment, address, key, sub = await _env()
    await _enrol_first(core, enrolment, sub)
    proof = await _proof(core, address, key)
    _, method, replaces = await enrolment.enroll(_req(core, sub, age=10 * MAX_AGE, siwe=proof))
    assert (method, replaces) == ("wallet_signature", True)
    # EIP-4361: the nonce is used once
    with pytest.raises(InvalidGrant) as err:
        await enrolment.enroll(_req(core, sub, siwe=proof))
    assert err.value.reason == "nonce_replay"


async def test_a_login_message_cannot_serve_as_a_reenrolment() -> None:
    core, enrolment, address, key, sub = await _env()
    await _enrol_first(core, enrolment, sub)
    overrides: list[dict[str, Any]] = [
        {"statement": "Sign in to the trading venue."}, {"resources": []},
        {"resources": ["urn:did-auth:otp:other"]},
    ]
    for over in overrides:
        with pytest.raises(InvalidRequest) as err:
            await enrolment.enroll(_req(core, sub, siwe=await _proof(core, address, key, **over)))
        assert err.value.reason == "reenrol_statement"


async def test_the_reenrolment_message_is_for_this_account_and_recent() -> None:
    core, enrolment, address, key, sub = await _env()
    await _enrol_first(core, enrolment, sub)
    other, other_key = siwe_text.new_account()
    with pytest.raises(InvalidGrant) as err:
        await enrolment.enroll(_req(core, sub, siwe=await _proof(core, other, other_key)))
    assert err.value.reason == "account"
    # at most step_up_max_age old (+ the clock skew), by the injected clock
    skew = core.settings.clock_skew
    old = await _proof(core, address, key, issued_at=core.clock.now() - MAX_AGE - skew - 1,
                       expiration=core.clock.now() + 600)
    with pytest.raises(InvalidGrant) as err:
        await enrolment.enroll(_req(core, sub, siwe=old))
    assert err.value.reason == "expired"
    ok = await _proof(core, address, key, issued_at=core.clock.now() - MAX_AGE - skew)
    assert (await enrolment.enroll(_req(core, sub, siwe=ok)))[1] == "wallet_signature"


async def test_the_reenrolment_signature_must_verify() -> None:
    core, enrolment, address, key, sub = await _env()
    await _enrol_first(core, enrolment, sub)
    proof = await _proof(core, address, key)
    _, stranger = siwe_text.new_account()
    forged = {"message": proof["message"], "signature": siwe_text.sign(proof["message"], stranger)}
    with pytest.raises(InvalidGrant):
        await enrolment.enroll(_req(core, sub, siwe=forged))
    # the refused attempt did not burn the nonce
    assert (await enrolment.enroll(_req(core, sub, siwe=proof)))[1] == "wallet_signature"


@pytest.mark.parametrize("siwe", ["text", {"message": ""}, {"message": "x", "signature": 5},
                                  {"message": "x" * (16 * 1024 + 1), "signature": "0x"}])
async def test_malformed_reenrolment_proofs(siwe: Any) -> None:
    core, enrolment, _, _, sub = await _env()
    with pytest.raises(InvalidRequest):
        await enrolment.enroll(_req(core, sub, siwe=siwe))
