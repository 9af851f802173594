"""RFC 9068 access tokens as the issuer signs them, checked with an independent JWT library
(PyJWT) against the published JWKS: header, claims, lifetimes on the injected clock."""

from __future__ import annotations

import json

import jwt
import pytest

from did_auth.core.flows.issuance import issue_for_grant
from did_auth.core.tokens.issue import Grant, new_sid
from tests.core.flows.core import ISS, make_core

SUB = "did:pkh:eip155:1:0x52908400098527886E0F7030069857D2E4169EE7"


def _grant(**over: object) -> Grant:
    values: dict[str, object] = {
        "sub": SUB, "client_id": "dapp", "audience": "trading-api",
        "scopes": ("account:read", "trade:write"), "auth_time": 1_899_999_000,
        "amr": ("siwe",), "sid": new_sid(),
    }
    values.update(over)
    return Grant(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize("alg", ["ES256", "EdDSA"])
async def test_claims_and_header(alg: str) -> None:
    core = await make_core(signing_alg=alg)
    grant = _grant(extra={"act": {"sub": "did:key:z6Mk"}})
    at = core.issuer.issue(grant, 120)
    key = core.keys.signing_key()
    header = jwt.get_unverified_header(at.token)
    # RFC 9068 §2.1: typ "at+jwt"; the key's own algorithm and id
    assert header == {"alg": alg, "typ": "at+jwt", "kid": key.kid}
    public = jwt.PyJWK(json.loads(json.dumps(key.jwk))).key
    claims = jwt.decode(at.token, public, algorithms=[alg], audience="trading-api", issuer=ISS,
                        options={"verify_exp": False, "verify_iat": False})
    now = int(core.clock.now())
    assert claims == {
        "iss": ISS, "sub": SUB, "aud": "trading-api", "iat": now, "exp": now + 120,
        "jti": at.jti, "client_id": "dapp", "scope": "account:read trade:write",
        "sid": grant.sid, "auth_time": 1_899_999_000, "amr": ["siwe"],
        "act": {"sub": "did:key:z6Mk"},
    }
    assert (at.exp, at.ttl) == (now + 120, 120)
    assert "cnf" not in claims


async def test_jti_is_unique_and_dpop_binding_is_cnf() -> None:
    core = await make_core()
    grant = _grant()
    assert len({core.issuer.issue(grant, 60).jti for _ in range(50)}) == 50
    bound = core.issuer.issue(_grant(jkt="k" * 43), 60)
    claims = jwt.decode(bound.token, options={"verify_signature": False})
    assert claims["cnf"] == {"jkt": "k" * 43}  # RFC 9449 §6.1


async def test_issuance_uses_the_scopes_lifetime_and_creates_the_session() -> None:
    core = await make_core()  # access_token_ttl 300, wallet:withdraw max_ttl 60
    grant = _grant(scopes=("account:read", "wallet:withdraw"), amr=("siwe", "otp"))
    tokens, session = await issue_for_grant(core.settings, core.issuer, core.sessions, grant)
    assert tokens["expires_in"] == 60 and tokens["token_type"] == "Bearer"
    assert tokens["scope"] == "account:read wallet:withdraw"
    assert session.sid == grant.sid and session.amr == ("siwe", "otp")
    assert session.expires_at == core.clock.now() + core.settings.session_max_lifetime
    stored = await core.sessions.get(grant.sid)
    assert stored is not None and stored.refresh_hash and not stored.revoked
    assert tokens["refresh_token"] not in str(stored)  # stored hashed only


async def test_an_openid_connect_login_also_names_the_issuer_for_userinfo() -> None:
    core = await make_core()
    claims = jwt.decode(core.issuer.issue(_grant(userinfo=True), 60).token,
                        options={"verify_signature": False})
    # RFC 7519 §4.1.3: several audiences are an array; the API's stays first (OIDC Core §5.3)
    assert claims["aud"] == ["trading-api", ISS]
    own = jwt.decode(core.issuer.issue(_grant(userinfo=True, audience=ISS), 60).token,
                     options={"verify_signature": False})
    assert own["aud"] == ISS
    # ... and the session keeps it, so that refreshed access tokens carry it too.
    grant = _grant(userinfo=True)
    _, session = await issue_for_grant(core.settings, core.issuer, core.sessions, grant)
    stored = await core.sessions.get(grant.sid)
    assert session.userinfo and stored is not None and stored.userinfo
