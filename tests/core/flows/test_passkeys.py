"""Passkeys (WebAuthn L2) without HTTP: registration after a fresh login, several per
account, listing, removal, and the assertion as a step-up factor bound to a transaction
(challenge single use and bound, sign counter increasing, RFC 8176 amr `hwk` / `swk`).
Injected clock, in-memory store, a software authenticator (tests/soft_authenticator.py)."""

from __future__ import annotations

from typing import Any

import pytest

from did_auth.core.errors import (
    AccessDenied,
    InsufficientUserAuthentication,
    InvalidGrant,
    InvalidRequest,
)
from did_auth.core.flows.passkeys import REGISTRATION_BINDING, Passkeys, WebAuthnFactor
from tests import siwe_text
from tests.core.flows.core import Core, make_core
from tests.soft_authenticator import SoftAuthenticator as _Soft

MAX_AGE = 300
RP_ID, ORIGIN = "auth.example", "https://auth.example"  # tests.core.flows.core's issuer


def SoftAuthenticator(**kw: object) -> _Soft:  # a factory, named as the class
    return _Soft(rp_id=RP_ID, origin=ORIGIN, **kw)  # type: ignore[arg-type]


async def _env() -> tuple[Core, Passkeys, str]:
    core = await make_core()
    passkeys = Passkeys(settings=core.settings, store=core.store, clock=core.clock, otp=core.otp)
    address, _ = siwe_text.new_account()
    return core, passkeys, f"did:pkh:eip155:31337:{address}"


async def _register(
    core: Core, pk: Passkeys, sub: str, auth: _Soft, confirm: _Soft | None = None
) -> dict[str, Any]:
    """Register `auth`; `confirm`: a passkey the account already has, proving a factor."""
    now = core.clock.now()
    proof = None
    if confirm is not None:
        proof = confirm.get(await pk.assertion_options(sub, binding=REGISTRATION_BINDING))
    options = await pk.registration_options(sub, auth_time=now, webauthn=proof)
    return await pk.register(sub, auth.create(options), auth_time=now, name="laptop")


def test_relying_party_derives_from_a_loopback_issuer() -> None:
    from did_auth.config.settings import Settings

    s = Settings(issuer="http://127.0.0.1:8123")
    assert s.webauthn.relying_party(s.issuer) == ("localhost", ["http://localhost:8123"])


async def test_register_several_list_and_assert() -> None:
    core, pk, sub = await _env()
    device = SoftAuthenticator(backup_eligible=False)
    synced = SoftAuthenticator(backup_eligible=True)
    one = await _register(core, pk, sub, device)
    two = await _register(core, pk, sub, synced, confirm=device)
    assert one["amr"] == ["hwk"] and two["amr"] == ["swk"]
    listed = await pk.registered(sub)
    assert [p["id"] for p in listed] == [one["id"], two["id"]]
    assert "pk" not in listed[0]  # no key material shown

    options = await pk.assertion_options(sub, binding="tx-nonce-1")
    allowed = {c["id"] for c in options["publicKey"]["allowCredentials"]}
    assert allowed == {one["id"], two["id"]}
    assert options["publicKey"]["userVerification"] == "required"
    factor = await pk.verify_assertion(sub, device.get(options), binding="tx-nonce-1")
    assert factor.amr == ("hwk",) and factor.credential_id == one["id"]

    options = await pk.assertion_options(sub, binding="tx-nonce-2")
    assert await WebAuthnFactor(pk).verify(sub, synced.get(options), binding="tx-nonce-2") == (
        "swk",
    )
    assert (await pk.registered(sub))[1]["last_used_at"] == int(core.clock.now())


async def test_same_wallet_on_another_chain_is_the_same_account() -> None:
    core, pk, sub = await _env()
    device = SoftAuthenticator()
    await _register(core, pk, sub, device)
    other_chain = sub.replace(":31337:", ":1:")
    options = await pk.assertion_options(other_chain, binding="n")
    assert (await pk.verify_assertion(other_chain, device.get(options), binding="n")).amr


async def test_registration_and_removal_need_a_fresh_login() -> None:
    core, pk, sub = await _env()
    stale = core.clock.now() - MAX_AGE - 1
    with pytest.raises(InsufficientUserAuthentication):
        await pk.registration_options(sub, auth_time=stale)
    device = SoftAuthenticator()
    options = await pk.registration_options(sub, auth_time=core.clock.now())
    with pytest.raises(InsufficientUserAuthentication):
        await pk.register(sub, device.create(options), auth_time=stale)
    assert await pk.registered(sub) == []
    created = await pk.register(sub, device.create(options), auth_time=core.clock.now())
    with pytest.raises(InsufficientUserAuthentication):
        await pk.remove(sub, created["id"], auth_time=stale)
    assert len(await pk.registered(sub)) == 1
    await pk.remove(sub, created["id"], auth_time=core.clock.now())
    assert await pk.registered(sub) == []
    with pytest.raises(AccessDenied):
        await pk.assertion_options(sub, binding="n")


async def test_registration_challenge_is_single_use_and_expires() -> None:
    core, pk, sub = await _env()
    options = await pk.registration_options(sub, auth_time=core.clock.now())
    core.clock.advance(core.settings.webauthn.challenge_ttl + 1)
    with pytest.raises(InvalidGrant):
        await pk.register(sub, SoftAuthenticator().create(options), auth_time=core.clock.now())
    assert await pk.registered(sub) == []
    options = await pk.registration_options(sub, auth_time=core.clock.now())
    await pk.register(sub, SoftAuthenticator().create(options), auth_time=core.clock.now())
    with pytest.raises(InvalidGrant):  # the same challenge again, another key
        await pk.register(sub, SoftAuthenticator().create(options), auth_time=core.clock.now())
    assert len(await pk.registered(sub)) == 1


async def test_adding_a_passkey_needs_a_current_factor() -> None:
    """A fresh login alone adds the first factor only; then a passkey assertion made for
    registration, or a TOTP code, must come with the request."""
    core, pk, sub = await _env()
    device = SoftAuthenticator()
    await _register(core, pk, sub, device)
    with pytest.raises(AccessDenied):
        await pk.registration_options(sub, auth_time=core.clock.now())
    # An assertion made for a transaction does not authorise a registration.
    made_for_tx = device.get(await pk.assertion_options(sub, binding="tx"))
    with pytest.raises(InvalidGrant):
        await pk.registration_options(sub, auth_time=core.clock.now(), webauthn=made_for_tx)
    with pytest.raises(InvalidRequest):  # no TOTP to check
        await pk.registration_options(sub, auth_time=core.clock.now(), otp="123456")
    await _register(core, pk, sub, SoftAuthenticator(), confirm=device)
    assert len(await pk.registered(sub)) == 2

    # An account with a TOTP (and no passkey) confirms with a code of it.
    import pyotp

    other_address, _ = siwe_text.new_account()
    other = f"did:pkh:eip155:31337:{other_address}"
    totp = pyotp.TOTP((await core.otp.enroll(other)).secret)
    await core.otp.confirm(other, totp.at(core.clock.now()))
    with pytest.raises(AccessDenied):
        await pk.registration_options(other, auth_time=core.clock.now())
    options = await pk.registration_options(
        other, auth_time=core.clock.now(), otp=totp.at(core.clock.now() + 30), sid="s1")
    await pk.register(other, SoftAuthenticator().create(options), auth_time=core.clock.now())
    assert len(await pk.registered(other)) == 1


async def test_registration_without_user_verification_is_refused() -> None:
    core, pk, sub = await _env()
    options = await pk.registration_options(sub, auth_time=core.clock.now())
    with pytest.raises(InvalidGrant):
        await pk.register(sub, SoftAuthenticator().create(options, uv=False),
                          auth_time=core.clock.now())
    assert await pk.registered(sub) == []


async def test_assertion_checks() -> None:
    core, pk, sub = await _env()
    device = SoftAuthenticator()
    await _register(core, pk, sub, device)

    async def refused(exc: type[Exception], **kw: Any) -> None:
        options = await pk.assertion_options(sub, binding="b")
        before = await pk.registered(sub)
        with pytest.raises(exc):
            await pk.verify_assertion(sub, device.get(options, **kw), binding="b")
        assert await pk.registered(sub) == before

    await refused(InvalidGrant, uv=False)
    await refused(InvalidGrant, origin="https://evil.example")
    await refused(InvalidGrant, rp_id="evil.example")
    await refused(InvalidGrant, be=True)  # backup eligibility cannot change
    device.sign_count = 5
    options = await pk.assertion_options(sub, binding="b")
    await pk.verify_assertion(sub, device.get(options), binding="b")  # count 6
    await refused(InvalidGrant, count=6)  # not greater
    await refused(InvalidGrant, count=2)  # backwards
    with pytest.raises(InvalidRequest):
        await pk.verify_assertion(sub, {"id": "x"}, binding="b")
    with pytest.raises(InvalidRequest):
        await pk.verify_assertion(sub, "not an object", binding="b")


async def test_assertion_is_bound_single_use_and_per_account() -> None:
    core, pk, sub = await _env()
    device = SoftAuthenticator()
    await _register(core, pk, sub, device)
    options = await pk.assertion_options(sub, binding="withdrawal-A")
    assertion = device.get(options)
    with pytest.raises(InvalidGrant):  # made for A, offered for B
        await pk.verify_assertion(sub, assertion, binding="withdrawal-B")
    await pk.verify_assertion(sub, assertion, binding="withdrawal-A")
    with pytest.raises(InvalidGrant):  # replay
        await pk.verify_assertion(sub, assertion, binding="withdrawal-A")

    # Another account's passkey, answering this account's challenge, is not a factor here.
    other_address, _ = siwe_text.new_account()
    other = f"did:pkh:eip155:31337:{other_address}"
    stranger = SoftAuthenticator()
    await _register(core, pk, other, stranger)
    options = await pk.assertion_options(sub, binding="c")
    with pytest.raises(InvalidGrant):
        await pk.verify_assertion(sub, stranger.get(options), binding="c")
    # ... nor does its challenge serve this account.
    options = await pk.assertion_options(other, binding="d")
    with pytest.raises(InvalidGrant):
        await pk.verify_assertion(sub, device.get(options), binding="d")


async def test_one_credential_one_account() -> None:
    core, pk, sub = await _env()
    device = SoftAuthenticator()
    await _register(core, pk, sub, device)
    other_address, _ = siwe_text.new_account()
    other = f"did:pkh:eip155:31337:{other_address}"
    options = await pk.registration_options(other, auth_time=core.clock.now())
    with pytest.raises(InvalidGrant):
        await pk.register(other, device.create(options), auth_time=core.clock.now())
    assert await pk.registered(other) == []


@pytest.mark.parametrize(
    ("table", "problem"),
    [
        ({"rp_id": "10.0.0.1"}, "is an IP address"),
        ({"rp_id": "Example.com"}, "lower-case domain"),
        ({"rp_id": "example.com:443"}, "bare domain"),
        ({"origins": ["http://example.com"]}, "only on loopback"),
        ({"origins": ["https://example.com/login"]}, "no path"),
        ({"rp_id": "example.com", "origins": ["https://evil.org"]}, "not rp_id"),
        ({"challenge_ttl": 5}, "greater than or equal"),
    ],
)
def test_webauthn_configuration_problems(table: dict[str, Any], problem: str) -> None:
    from pydantic import ValidationError

    from did_auth.config.settings import Settings

    with pytest.raises(ValidationError, match=problem):
        Settings.model_validate({"webauthn": table})


def test_webauthn_configuration_accepted() -> None:
    from did_auth.config.settings import Settings

    s = Settings.model_validate({
        "issuer": "https://auth.example.com",
        "webauthn": {"rp_id": "example.com",
                     "origins": ["https://auth.example.com", "https://example.com"]}})
    assert s.webauthn.relying_party(s.issuer) == (
        "example.com", ["https://auth.example.com", "https://example.com"])
    # An issuer on a public IP address and no rp_id: passkeys are off, nothing else is.
    assert Settings(issuer="https://203.0.113.7").webauthn.relying_party(
        "https://203.0.113.7") is None


async def test_the_first_totp_of_an_account_with_a_passkey_needs_the_passkey() -> None:
    from did_auth.core.flows.otp_enrolment import ADD_FACTOR_BINDING, OtpEnrolment, OtpEnrolRequest
    from did_auth.core.flows.signatures import EoaSignatureChecker

    core, pk, sub = await _env()
    enrolment = OtpEnrolment(settings=core.settings, clock=core.clock, otp=core.otp,
                             nonces=core.nonces, signatures=EoaSignatureChecker(), passkeys=pk)
    device = SoftAuthenticator()
    await _register(core, pk, sub, device)

    def req(**kw: Any) -> OtpEnrolRequest:
        return OtpEnrolRequest(sub=sub, client_id="dapp", auth_time=core.clock.now(), **kw)

    with pytest.raises(AccessDenied):  # a fresh login alone
        await enrolment.enroll(req())
    made_for_tx = device.get(await pk.assertion_options(sub, binding="tx"))
    with pytest.raises(InvalidGrant):
        await enrolment.enroll(req(webauthn=made_for_tx))
    assert not await core.otp.enrolled(sub)
    proof = device.get(await pk.assertion_options(sub, binding=ADD_FACTOR_BINDING))
    _, method, replaces = await enrolment.enroll(req(webauthn=proof))
    assert (method, replaces) == ("passkey", False)
