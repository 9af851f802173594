"""openid-client 6 (npm, panva) as the relying party of did-auth's code flow.

openid-client is strict: it checks discovery, `iss` in the authorization response (RFC
9207), state, PKCE, the ID token (signature against the served JWKS, iss, aud, exp, iat,
nonce, alg from discovery), the UserInfo `sub`, and the DPoP token type. Each test runs
the library end to end (tests/interop/openid_client_rp.mjs); the wallet step is the
sign-in page's (rp_harness.sign_in). Public clients (`none`), then one confidential client
per client-authentication method, each also refreshing its tokens with that method.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from did_auth.verifier import InvalidToken, JWKSCache, TokenVerifier
from tests.interop.rp_harness import (
    AUDIENCE,
    BASIC_SECRET,
    POST_SECRET,
    OAuthServer,
    run_code_flow,
    unverified_header,
)

SCRIPT = "openid_client_rp.mjs"
SCOPE = "openid account:read trade:write"


def check_flow(result: dict[str, Any], server: OAuthServer, client_id: str, *, dpop: bool) -> None:
    ids = result["id_claims"]
    assert ids["iss"] == server.url and ids["aud"] == client_id
    assert ids["sub"].startswith("did:pkh:eip155:31337:0x")
    assert result["userinfo"]["sub"] == ids["sub"]
    assert result["userinfo_after_refresh"]["sub"] == ids["sub"]
    assert set(result["scope"].split()) == {"openid", "account:read", "trade:write"}
    assert result["expires_in"] > 0
    # RFC 9068 §2: the access token is an at+jwt for the resource server, issued to this client.
    assert result["access_header"]["typ"] == "at+jwt"
    at = result["access_claims"]
    # ... and for UserInfo: the issuer is its second audience (OIDC Core §5.3.1).
    assert at["aud"] == [AUDIENCE, server.url]
    assert at["client_id"] == client_id and at["sub"] == ids["sub"]
    assert result["refreshed"]["access_claims"]["sub"] == ids["sub"]
    assert result["refreshed"]["access_token"] != result["access_token"]
    if dpop:
        # RFC 9449 §5 / §6: token_type DPoP and both tokens bound to the proof's key (named
        # by dpop_jkt when the authorization request carried it, §10).
        assert result["dpop_jkt"] in (None, result["dpop_key_jkt"])
        assert result["token_type"].lower() == "dpop"
        assert result["refreshed"]["token_type"].lower() == "dpop"
        assert at["cnf"] == {"jkt": result["dpop_key_jkt"]}
        assert result["refreshed"]["access_claims"]["cnf"] == {"jkt": result["dpop_key_jkt"]}
    else:
        assert result["token_type"].lower() == "bearer"
        assert "cnf" not in at
    refused = result["id_token_at_userinfo"]
    assert refused["refused"] is True, refused
    # RFC 6750 §3.1 / RFC 9449 §7.1: 401 with an invalid_token challenge.
    assert refused["status"] == 401, refused
    assert [c["parameters"]["error"] for c in refused["challenges"]] == ["invalid_token"], refused
    check_verifier_refuses_id_token(server, result["id_token"], client_id)


def check_verifier_refuses_id_token(server: OAuthServer, id_token: str, client_id: str) -> None:
    """The ID token is signed by the same key as access tokens, yet did_auth.verifier must
    never take it for one (RFC 9068 §4: typ `at+jwt`), whatever audience it is set up for."""
    assert unverified_header(id_token)["typ"] == "JWT"
    jwks = JWKSCache.for_issuer(server.url)
    for audience in (AUDIENCE, client_id):
        # Revocation is not what this checks (the ID token is live): no feed follower
        # thread outliving the test server.
        verifier = TokenVerifier(server.url, audience, jwks, follow_revocations=False)
        with pytest.raises(InvalidToken, match="typ"):
            verifier.verify(id_token, scheme="Bearer")


def test_discovery_is_what_openid_client_needs(public_server: OAuthServer) -> None:
    meta = public_server.meta
    assert meta["issuer"] == public_server.url
    assert meta["authorization_response_iss_parameter_supported"] is True
    assert meta["code_challenge_methods_supported"] == ["S256"]
    assert "ES256" in meta["dpop_signing_alg_values_supported"]
    # The client authentication methods the libraries below use, and nothing else.
    assert set(meta["token_endpoint_auth_methods_supported"]) == {
        "client_secret_basic", "client_secret_post", "private_key_jwt", "none",
    }
    assert "ES256" in meta["token_endpoint_auth_signing_alg_values_supported"]
    jwks = httpx.get(meta["jwks_uri"]).json()
    assert all(k["alg"] in meta["id_token_signing_alg_values_supported"] for k in jwks["keys"])


def test_public_client_code_pkce_refresh_userinfo(public_server: OAuthServer) -> None:
    result = run_code_flow(SCRIPT, public_server, client_id="rp-public", scope=SCOPE, auth="none")
    check_flow(result, public_server, "rp-public", dpop=False)


def test_public_client_dpop_bound_code_and_refresh(public_server: OAuthServer) -> None:
    result = run_code_flow(
        SCRIPT, public_server, client_id="rp-dpop", scope=SCOPE, auth="none", dpop=True
    )
    check_flow(result, public_server, "rp-dpop", dpop=True)


def test_public_client_dpop_without_dpop_jkt(public_server: OAuthServer) -> None:
    # RFC 9449 §10: dpop_jkt is OPTIONAL and openid-client does not send it by default; the
    # proof at the code exchange binds the tokens (§5), refresh and UserInfo need that key.
    # rp-dpop is require_dpop: it is not refused at /authorize for leaving dpop_jkt out.
    result = run_code_flow(
        SCRIPT, public_server, client_id="rp-dpop", scope=SCOPE, auth="none", dpop=True,
        dpop_jkt=False,
    )
    assert result["dpop_jkt"] is None
    check_flow(result, public_server, "rp-dpop", dpop=True)


def test_confidential_client_secret_basic_with_spaces_and_plus(
    confidential_server: OAuthServer,
) -> None:
    # openid-client form-urlencodes the secret (space -> `+`, `+` -> `%2B`) before Base64,
    # as RFC 6749 §2.3.1 says; the server must decode it the same way.
    result = run_code_flow(
        SCRIPT, confidential_server, client_id="rp-basic", scope=SCOPE,
        auth="client_secret_basic", secret=BASIC_SECRET,
    )
    check_flow(result, confidential_server, "rp-basic", dpop=False)


def test_confidential_client_secret_post(confidential_server: OAuthServer) -> None:
    result = run_code_flow(
        SCRIPT, confidential_server, client_id="rp-post", scope=SCOPE,
        auth="client_secret_post", secret=POST_SECRET,
    )
    check_flow(result, confidential_server, "rp-post", dpop=False)


def test_confidential_client_private_key_jwt(confidential_server: OAuthServer) -> None:
    result = run_code_flow(
        SCRIPT, confidential_server, client_id="rp-jwt", scope=SCOPE,
        auth="private_key_jwt", private_jwk=confidential_server.client_keys["rp-jwt"],
    )
    check_flow(result, confidential_server, "rp-jwt", dpop=False)


def test_confidential_client_private_key_jwt_with_dpop(confidential_server: OAuthServer) -> None:
    result = run_code_flow(
        SCRIPT, confidential_server, client_id="rp-jwt-dpop", scope=SCOPE,
        auth="private_key_jwt", private_jwk=confidential_server.client_keys["rp-jwt-dpop"],
        dpop=True,
    )
    check_flow(result, confidential_server, "rp-jwt-dpop", dpop=True)


def test_confidential_client_private_key_jwt_with_dpop_without_dpop_jkt(
    confidential_server: OAuthServer,
) -> None:
    result = run_code_flow(
        SCRIPT, confidential_server, client_id="rp-jwt-dpop", scope=SCOPE,
        auth="private_key_jwt", private_jwk=confidential_server.client_keys["rp-jwt-dpop"],
        dpop=True, dpop_jkt=False,
    )
    assert result["dpop_jkt"] is None
    check_flow(result, confidential_server, "rp-jwt-dpop", dpop=True)
