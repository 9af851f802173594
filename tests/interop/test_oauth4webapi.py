"""oauth4webapi 3 (npm, panva) as relying party and as resource server of did-auth.

The relying party runs code + PKCE, checks the authorization response (state, RFC 9207
`iss`), the token response and ID token, UserInfo and refresh, with each client
authentication method and with DPoP (RFC 9449). As a resource server it runs
`validateJwtAccessToken` (RFC 9068 / RFC 6750 / RFC 9449) on the access tokens against
the served JWKS, and must refuse the ID token there and at UserInfo
(tests/interop/oauth4webapi_rp.mjs).
"""

from __future__ import annotations

from typing import Any

from tests.interop.rp_harness import (
    AUDIENCE,
    BASIC_SECRET,
    POST_SECRET,
    OAuthServer,
    run_code_flow,
)

SCRIPT = "oauth4webapi_rp.mjs"
SCOPE = "openid account:read trade:write"


def run(server: OAuthServer, client_id: str, **kw: Any) -> dict[str, Any]:
    return run_code_flow(SCRIPT, server, client_id=client_id, scope=SCOPE, audience=AUDIENCE, **kw)


def check_flow(result: dict[str, Any], server: OAuthServer, client_id: str, *, dpop: bool) -> None:
    ids = result["id_claims"]
    assert ids["iss"] == server.url and ids["aud"] == client_id
    assert result["userinfo"]["sub"] == ids["sub"]
    assert result["access_header"]["typ"] == "at+jwt"
    for at in (result["at_claims"], result["refreshed"]["at_claims"]):
        # validateJwtAccessToken accepted it; these are the claims it returned.
        # The API's audience, and the issuer for UserInfo (OIDC Core §5.3.1).
        assert at["iss"] == server.url and at["aud"] == [AUDIENCE, server.url]
        assert at["sub"] == ids["sub"] and at["client_id"] == client_id
        assert set(at["scope"].split()) == {"account:read", "trade:write"}
        if dpop:
            # RFC 9449 §5: bound to the proof's key (named by dpop_jkt when it was sent, §10).
            assert result["dpop_jkt"] in (None, result["dpop_key_jkt"])
            assert at["cnf"] == {"jkt": result["dpop_key_jkt"]}
        else:
            assert "cnf" not in at
    assert result["at_claims"]["jti"] != result["refreshed"]["at_claims"]["jti"]
    expected_type = "dpop" if dpop else "bearer"
    assert result["token_type"].lower() == expected_type
    assert result["refreshed"]["token_type"].lower() == expected_type

    refused = result["id_token_at_userinfo"]
    assert refused["refused"] is True and refused["status"] == 401, refused
    assert [c["parameters"]["error"] for c in refused["challenges"]] == ["invalid_token"]
    # RFC 9068 §4: typ at+jwt is required, so the ID token (typ JWT) is not an access token,
    # neither for the API audience nor for the client's own.
    for key in ("id_token_at_rs", "id_token_at_rs_for_client"):
        refused = result[key]
        assert refused["refused"] is True, refused
        assert refused["message"] == 'unexpected JWT "typ" header parameter value', refused
    if dpop:
        refused = result["bound_as_bearer"]
        assert refused["refused"] is True and "DPoP" in refused["message"], refused


def test_public_client(public_server: OAuthServer) -> None:
    check_flow(run(public_server, "rp-public", auth="none"), public_server, "rp-public", dpop=False)


def test_public_client_dpop(public_server: OAuthServer) -> None:
    result = run(public_server, "rp-dpop", auth="none", dpop=True)
    check_flow(result, public_server, "rp-dpop", dpop=True)


def test_public_client_dpop_without_dpop_jkt(public_server: OAuthServer) -> None:
    # RFC 9449 §10: dpop_jkt is OPTIONAL (oauth4webapi leaves it to the caller); the proof
    # at the code exchange binds the tokens (§5), also for the require_dpop client rp-dpop.
    result = run(public_server, "rp-dpop", auth="none", dpop=True, dpop_jkt=False)
    assert result["dpop_jkt"] is None
    check_flow(result, public_server, "rp-dpop", dpop=True)


def test_client_secret_basic(confidential_server: OAuthServer) -> None:
    result = run(confidential_server, "rp-basic", auth="client_secret_basic", secret=BASIC_SECRET)
    check_flow(result, confidential_server, "rp-basic", dpop=False)


def test_client_secret_post(confidential_server: OAuthServer) -> None:
    result = run(confidential_server, "rp-post", auth="client_secret_post", secret=POST_SECRET)
    check_flow(result, confidential_server, "rp-post", dpop=False)


def test_private_key_jwt(confidential_server: OAuthServer) -> None:
    result = run(
        confidential_server, "rp-jwt", auth="private_key_jwt",
        private_jwk=confidential_server.client_keys["rp-jwt"],
    )
    check_flow(result, confidential_server, "rp-jwt", dpop=False)


def test_private_key_jwt_dpop(confidential_server: OAuthServer) -> None:
    result = run(
        confidential_server, "rp-jwt-dpop", auth="private_key_jwt",
        private_jwk=confidential_server.client_keys["rp-jwt-dpop"], dpop=True,
    )
    check_flow(result, confidential_server, "rp-jwt-dpop", dpop=True)
