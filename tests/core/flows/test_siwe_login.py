"""The EIP-4361 login decision without HTTP: every relying-party check, times on the
injected clock (expiration, not-before, issued-at, with the configured skew), the nonce
consumed last and once, ReCap scopes (EIP-5573), step-up with a second factor, and the
tokens it issues (RFC 9068)."""

from __future__ import annotations

from typing import Any

import pyotp
import pytest

from did_auth.core.errors import InvalidClient, InvalidGrant, InvalidRequest, InvalidScope
from did_auth.core.flows.siwe_login import SiweRequest
from did_auth.core.siwe.recaps import build_recap, recap_statement
from tests import siwe_text
from tests.core.flows.core import DAPP_DOMAIN, ISS, Core, make_core

SKEW = 60  # Settings.clock_skew default


async def _login(core: Core, key: bytes, address: str, *, nonce: str | None = None,
                 text: str | None = None, **req: Any) -> tuple[dict[str, Any], Any]:
    msg = req.pop("msg", {})
    if text is None:
        n = nonce if nonce is not None else await core.nonces.issue("dapp")
        text = core.siwe_text(address, n, **msg)
    request = SiweRequest(client_id=req.pop("client_id", "dapp"), message=text,
                          signature=req.pop("signature", None) or siwe_text.sign(text, key),
                          **req)
    return await core.siwe.verify(request)


async def _refused(core: Core, key: bytes, address: str, exc: type[Exception] = InvalidGrant,
                   **kw: Any) -> Any:
    with pytest.raises(exc) as err:
        await _login(core, key, address, **kw)
    return err.value


async def test_a_login_issues_tokens_for_the_did_pkh_subject() -> None:
    core = await make_core()
    address, key = siwe_text.new_account()
    tokens, grant = await _login(core, key, address)
    assert grant.sub == f"did:pkh:eip155:31337:{address}"
    assert grant.scopes == ("account:read",) and grant.audience == "trading-api"
    assert grant.amr == ("siwe",) and grant.auth_time == int(core.clock.now())
    assert tokens["token_type"] == "Bearer" and tokens["refresh_token"].startswith("rt_")
    claims = await core.local.active_claims(tokens["access_token"])
    assert claims is not None and claims["sub"] == grant.sub and claims["iss"] == ISS
    assert claims["exp"] - claims["iat"] == tokens["expires_in"] == 300


async def test_the_nonce_is_consumed_once_and_last() -> None:
    core = await make_core()
    address, key = siwe_text.new_account()
    n = await core.nonces.issue("dapp")
    text = core.siwe_text(address, n)
    # a refused request (wrong domain, bad signature, other client) never burns the nonce
    _, stranger = siwe_text.new_account()
    await _refused(core, key, address, text=text, signature=siwe_text.sign(text, stranger))
    await _refused(core, key, address, nonce=n, msg={"domain": "evil.example"})
    await _refused(core, key, address, InvalidClient, text=text, client_id="nobody")
    await _login(core, key, address, text=text)
    err = await _refused(core, key, address, text=text)
    assert err.reason == "nonce_replay"
    # a nonce this server never issued
    assert (await _refused(core, key, address, nonce="abcdefgh12345678")).reason == "nonce_unknown"


async def test_times_follow_the_injected_clock_with_the_skew() -> None:
    core = await make_core()
    address, key = siwe_text.new_account()
    now = core.clock.now()
    # expiration-time: valid strictly before it (skew in the wallet's favour)
    await _login(core, key, address, msg={"expiration": now - SKEW + 1})
    err = await _refused(core, key, address, msg={"expiration": now - SKEW})
    assert err.reason == "expired"
    # not-before: valid from it on
    await _login(core, key, address, msg={"not_before": now + SKEW})
    err = await _refused(core, key, address, msg={"not_before": now + SKEW + 1})
    assert err.reason == "not_yet_valid"
    # issued-at in the future: not from an honest wallet talking to us now
    await _login(core, key, address, msg={"issued_at": now + SKEW})
    err = await _refused(core, key, address, msg={"issued_at": now + SKEW + 1})
    assert err.reason == "issued_in_future"


async def test_a_message_outlives_its_nonce() -> None:
    core = await make_core()  # nonce_ttl 300
    address, key = siwe_text.new_account()
    n = await core.nonces.issue("dapp")
    text = core.siwe_text(address, n, expiration=core.clock.now() + 3600)
    core.clock.advance(300)
    assert (await _refused(core, key, address, text=text)).reason == "nonce_unknown"


async def test_the_client_policy_binds_domain_uri_and_chain() -> None:
    core = await make_core()
    address, key = siwe_text.new_account()
    # EIP-4361: the relying party MUST check that domain matches its origin (and the uri
    # and chain are the client's)
    assert (await _refused(core, key, address, msg={"domain": "localhost:3001"})).reason == "domain"
    assert (await _refused(core, key, address,
                           msg={"uri": "http://evil.example/login"})).reason == "uri"
    err = await _refused(core, key, address, InvalidRequest, msg={"chain_id": 5})
    assert err.reason == "chain"
    await _login(core, key, address, msg={"chain_id": 1, "domain": DAPP_DOMAIN})


async def test_malformed_requests_are_invalid_request() -> None:
    core = await make_core()
    address, _ = siwe_text.new_account()
    for text in ("", None, "x" * (16 * 1024 + 1)):
        with pytest.raises(InvalidRequest):
            await core.siwe.verify(SiweRequest(client_id="dapp", message=text, signature="0x"))
    text = core.siwe_text(address, await core.nonces.issue("dapp"))
    for sig in (None, 5, "0x" + "00" * (16 * 1024 + 1)):
        with pytest.raises(InvalidRequest):
            await core.siwe.verify(SiweRequest(client_id="dapp", message=text, signature=sig))


async def test_requested_scopes_and_audience() -> None:
    core = await make_core()
    address, key = siwe_text.new_account()
    _, grant = await _login(core, key, address, scope="trade:write account:read",
                            audience="other-api")
    assert grant.scopes == ("trade:write", "account:read") and grant.audience == "other-api"
    await _refused(core, key, address, InvalidScope, scope="admin")
    await _refused(core, key, address, InvalidScope, audience="elsewhere")


async def test_a_signed_recap_grants_exactly_what_it_names() -> None:
    core = await make_core()
    address, key = siwe_text.new_account()
    recap, suffix = build_recap("trading-api", ("trade:write",))
    msg = {"statement": recap_statement("Sign in.", suffix), "resources": [recap]}
    _, grant = await _login(core, key, address, msg=msg)
    assert grant.scopes == ("trade:write",)
    # a requested scope must lie inside the signed ReCap
    err = await _refused(core, key, address, InvalidScope, msg=msg, scope="account:read")
    assert "ReCap" in err.description


async def test_step_up_scopes_need_a_second_factor() -> None:
    core = await make_core()  # wallet:withdraw: step_up, max_ttl 60
    address, key = siwe_text.new_account()
    err = await _refused(core, key, address, InvalidScope, scope="wallet:withdraw")
    assert err.reason == "step_up_required"
    sub = f"did:pkh:eip155:31337:{address}"
    e = await core.otp.enroll(sub)
    totp = pyotp.TOTP(e.secret)
    await core.otp.confirm(sub, totp.at(core.clock.now()))
    core.clock.advance(30)
    tokens, grant = await _login(core, key, address, scope="wallet:withdraw",
                                 otp=totp.at(core.clock.now()))
    assert grant.amr == ("siwe", "otp") and tokens["expires_in"] == 60
    # a wrong second factor is refused after the signature and the nonce: a fresh
    # signed message per guess
    n = await core.nonces.issue("dapp")
    err = await _refused(core, key, address, nonce=n, scope="wallet:withdraw", otp="000000"
                         if totp.at(core.clock.now()) != "000000" else "111111")
    assert err.reason == "otp_invalid"
    assert (await _refused(core, key, address, nonce=n)).reason == "nonce_replay"


async def test_a_dpop_key_binds_the_tokens() -> None:
    core = await make_core()
    address, key = siwe_text.new_account()
    tokens, grant = await _login(core, key, address, jkt="j" * 43)
    assert tokens["token_type"] == "DPoP" and grant.jkt == "j" * 43
    claims = core.local.signed_claims(tokens["access_token"])
    assert claims is not None and claims["cnf"] == {"jkt": "j" * 43}
    session = await core.sessions.get(grant.sid)
    assert session is not None and session.jkt == "j" * 43
