"""Checking our own access tokens inside the server (introspection, revocation, OTP
enrolment) without HTTP: RFC 9068 `typ`, RFC 8725 key algorithm, RFC 7519 times with 30 s
leeway on the injected clock, denied jti, revoked sessions, the registry verdict."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from did_auth_verifier.jose import sign_jws

from did_auth.core.errors import TemporarilyUnavailable
from did_auth.core.flows.issuance import issue_for_grant
from did_auth.core.tokens.issue import Grant, encode_jwt, new_sid
from did_auth.core.tokens.local_check import deny_jti, jti_key
from did_auth.core.tokens.sessions import Session
from tests.core.flows.core import ISS, Core, make_core

SUB = "did:pkh:eip155:1:0x52908400098527886E0F7030069857D2E4169EE7"


def _grant(**over: Any) -> Grant:
    values: dict[str, Any] = {
        "sub": SUB, "client_id": "dapp", "audience": "trading-api",
        "scopes": ("account:read",), "auth_time": 0, "amr": ("siwe",), "sid": new_sid(),
    }
    values.update(over)
    return Grant(**values)


async def _login(core: Core) -> tuple[str, Grant]:
    grant = _grant(auth_time=int(core.clock.now()))
    tokens, _ = await issue_for_grant(core.settings, core.issuer, core.sessions, grant)
    return tokens["access_token"], grant


def _resign(core: Core, token: str, *, header: dict[str, Any] | None = None,
            drop: tuple[str, ...] = (), **claims: Any) -> str:
    """The token's claims, changed, signed again with our current key."""
    body = token.split(".")[1]
    payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    payload.update(claims)
    for name in drop:
        payload.pop(name, None)
    key = core.keys.signing_key()
    return encode_jwt(payload, key, key.alg,
                      header if header is not None else {"typ": "at+jwt", "kid": key.kid})


async def test_a_live_token_is_active() -> None:
    core = await make_core()
    token, grant = await _login(core)
    claims = await core.local.active_claims(token)
    assert claims is not None and claims["sid"] == grant.sid and claims["iss"] == ISS


async def test_expiry_with_30_seconds_of_leeway() -> None:
    core = await make_core()  # access_token_ttl 300
    token, _ = await _login(core)
    # RFC 7519 §4.1.4: the current time MUST be before exp (30 s skew tolerated)
    core.clock.advance(300 + 29)
    assert core.local.signed_claims(token) is not None
    core.clock.advance(1)
    assert core.local.signed_claims(token) is None
    assert core.local.signed_claims(token, verify_exp=False) is not None  # (revocation)
    assert await core.local.active_claims(token) is None


async def test_a_token_from_the_future_is_not_trusted() -> None:
    core = await make_core()
    token, _ = await _login(core)
    now = int(core.clock.now())
    assert core.local.signed_claims(_resign(core, token, iat=now + 30)) is not None
    assert core.local.signed_claims(_resign(core, token, iat=now + 31)) is None
    assert core.local.signed_claims(_resign(core, token, nbf=now + 31)) is None
    assert core.local.signed_claims(_resign(core, token, nbf=now + 30)) is not None


async def test_only_our_access_tokens() -> None:
    core = await make_core()
    token, _ = await _login(core)
    kid = core.keys.signing_key().kid
    # RFC 9068 §2.1: typ at+jwt (an ID token, typ JWT, is not an access token)
    assert core.local.signed_claims(_resign(core, token, header={"typ": "JWT", "kid": kid})) is None
    assert core.local.signed_claims(_resign(core, token, iss="https://evil.example")) is None
    assert core.local.signed_claims(_resign(core, token, header={"typ": "at+jwt"})) is None
    for name in ("exp", "iat", "jti", "sub", "sid"):
        assert core.local.signed_claims(_resign(core, token, drop=(name,))) is None, name
    # RFC 7519 §2 NumericDate: a number, and a bool is not one
    for bad in (True, "1900000000", None):
        assert core.local.signed_claims(_resign(core, token, exp=bad)) is None
    for junk in ("", "a.b.c", token[:-4] + "AAAA", token + "x"):
        assert core.local.signed_claims(junk) is None


async def test_another_key_with_our_kid_is_refused() -> None:
    core = await make_core()
    token, _ = await _login(core)
    body = token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    kid = core.keys.signing_key().kid
    forged = sign_jws(ec.generate_private_key(ec.SECP256R1()),
                      {"alg": "ES256", "typ": "at+jwt", "kid": kid}, claims)
    assert core.local.signed_claims(forged) is None


async def test_a_denied_jti_and_a_revoked_session_end_the_token() -> None:
    core = await make_core()
    token, _ = await _login(core)
    claims = core.local.signed_claims(token)
    assert claims is not None
    now = core.clock.now()
    assert await deny_jti(core.store, claims["jti"], claims["exp"], now)
    assert not await deny_jti(core.store, claims["jti"], claims["exp"], now)  # already
    assert await core.local.active_claims(token) is None
    # the denial lasts until the token would have expired anyway (+60 s), then goes
    core.clock.advance(claims["exp"] - now + 59)
    assert await core.store.get(jti_key(claims["jti"])) is not None
    core.clock.advance(1)
    assert await core.store.get(jti_key(claims["jti"])) is None

    token2, grant2 = await _login(core)
    assert await core.local.active_claims(token2) is not None
    assert await core.revocations.revoke_sid(grant2.sid, reason="test")
    assert await core.local.active_claims(token2) is None


async def test_the_registry_verdict_is_asked_last() -> None:
    core = await make_core()
    token, grant = await _login(core)
    asked: list[str] = []

    class Verdict:
        def __init__(self, allowed: bool | None) -> None:
            self.allowed = allowed

        async def session_allowed(self, session: Session) -> bool:
            asked.append(session.sid)
            if self.allowed is None:
                raise TemporarilyUnavailable("chain down")
            return self.allowed

    core.local.session_check = Verdict(True)
    assert await core.local.active_claims(token) is not None
    core.local.session_check = Verdict(False)
    assert await core.local.active_claims(token) is None
    assert asked == [grant.sid, grant.sid]
    # the chain down: fails closed (the edge answers 503), never "active"
    core.local.session_check = Verdict(None)
    with pytest.raises(TemporarilyUnavailable):
        await core.local.active_claims(token)
    # an expired token is not even looked up
    core.clock.advance(10_000)
    asked.clear()
    assert await core.local.active_claims(token) is None and asked == []
