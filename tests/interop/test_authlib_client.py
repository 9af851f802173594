"""authlib (Python) as the relying party: code + PKCE and refresh with every client
authentication method, and DPoP-bound code and refresh flows.

authlib's `OAuth2Client` (httpx) builds the authorization URL with an S256 challenge,
exchanges the code and refreshes with its own client authentication: `none`,
`client_secret_basic`, `client_secret_post`, and `private_key_jwt` (authlib's RFC 7523
`PrivateKeyJWT`, ES256). The ID token is validated with authlib's OIDC claim checks after
a joserfc signature check against the served JWKS (tests/edge/web/test_oidc.validate_id_token).
authlib has no DPoP support: the proofs (RFC 9449) are passed as request headers.
"""

from __future__ import annotations

import secrets
from typing import Any
from urllib.parse import parse_qs, quote_plus, urlsplit

import httpx
import pytest
from authlib.integrations.httpx_client import OAuth2Client, OAuthError
from authlib.oauth2.rfc7523 import PrivateKeyJWT
from cryptography.hazmat.primitives.asymmetric import ec
from joserfc.jwk import ECKey

from did_auth.verifier import jwk_thumbprint, make_dpop_proof
from did_auth.verifier._jose import public_jwk
from tests.edge.web.test_oidc import validate_id_token
from tests.interop.rp_harness import (
    AUDIENCE,
    BASIC_SECRET,
    CALLBACK,
    POST_SECRET,
    SPACES_SECRET,
    OAuthServer,
    sign_in,
    unverified_claims,
)

SCOPE = "openid account:read trade:write"


def make_client(server: OAuthServer, client_id: str, method: str, secret: Any = None) -> OAuth2Client:
    rp = OAuth2Client(
        client_id=client_id,
        client_secret=secret,
        scope=SCOPE,
        redirect_uri=CALLBACK,
        code_challenge_method="S256",
        token_endpoint_auth_method=method,
        timeout=30,
    )
    if method == "private_key_jwt":
        rp.register_client_auth_method(PrivateKeyJWT(server.meta["token_endpoint"], alg="ES256"))
    return rp


def dpop_headers(key: ec.EllipticCurvePrivateKey | None, htm: str, htu: str, token: str | None = None) -> dict[str, str]:
    if key is None:
        return {}
    return {"DPoP": make_dpop_proof(key, htm=htm, htu=htu, access_token=token)}


def userinfo(server: OAuthServer, token: str, key: ec.EllipticCurvePrivateKey | None) -> httpx.Response:
    url = server.meta["userinfo_endpoint"]
    scheme = "DPoP" if key is not None else "Bearer"
    return httpx.get(url, headers={"Authorization": f"{scheme} {token}", **dpop_headers(key, "GET", url, token)})


def code_flow_and_refresh(
    server: OAuthServer, rp: OAuth2Client, *, dpop_key: ec.EllipticCurvePrivateKey | None = None
) -> None:
    meta = server.meta
    token_url = meta["token_endpoint"]
    verifier = secrets.token_urlsafe(48)
    nonce = secrets.token_urlsafe(16)
    extra = {}
    if dpop_key is not None:
        extra["dpop_jkt"] = jwk_thumbprint(public_jwk(dpop_key.public_key())[1])
    url, state = rp.create_authorization_url(
        meta["authorization_endpoint"], code_verifier=verifier, nonce=nonce, **extra
    )
    redirect = sign_in(url, server.url)
    assert parse_qs(urlsplit(redirect).query)["state"] == [state]
    token = rp.fetch_token(
        token_url, authorization_response=redirect, code_verifier=verifier,
        headers=dpop_headers(dpop_key, "POST", token_url),
    )
    assert token["token_type"] == ("DPoP" if dpop_key is not None else "Bearer")
    claims = validate_id_token(
        token["id_token"], httpx.get(meta["jwks_uri"]).json(), issuer=server.url,
        client_id=rp.client_id, nonce=nonce, token=token,
    )
    at = unverified_claims(token["access_token"])
    # The code flow's access token is the API's and also the UserInfo one (OIDC Core §5.3.1).
    assert at["sub"] == claims["sub"] and at["aud"] == [AUDIENCE, server.url]
    assert at["client_id"] == rp.client_id
    jkt = extra.get("dpop_jkt")
    assert at.get("cnf") == ({"jkt": jkt} if jkt else None)
    info = userinfo(server, token["access_token"], dpop_key)
    assert info.status_code == 200, info.text
    assert info.json()["sub"] == claims["sub"]

    # Refresh with the same client authentication (RFC 6749 §6: a confidential client
    # authenticates on every grant).
    fresh = rp.refresh_token(
        token_url, refresh_token=token["refresh_token"],
        headers=dpop_headers(dpop_key, "POST", token_url),
    )
    assert fresh["token_type"] == token["token_type"]
    fresh_at = unverified_claims(fresh["access_token"])
    assert fresh_at["sub"] == claims["sub"] and fresh_at["jti"] != at["jti"]
    assert fresh_at.get("cnf") == at.get("cnf")
    info = userinfo(server, fresh["access_token"], dpop_key)
    assert info.status_code == 200, info.text

    # The ID token is not an access token (OIDC Core §5.3.1, RFC 9068).
    refused = userinfo(server, token["id_token"], dpop_key)
    assert refused.status_code == 401 and refused.json()["error"] == "invalid_token"


def test_public_client_none(public_server: OAuthServer) -> None:
    code_flow_and_refresh(public_server, make_client(public_server, "rp-public", "none"))


def test_public_client_dpop(public_server: OAuthServer) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    code_flow_and_refresh(public_server, make_client(public_server, "rp-dpop", "none"), dpop_key=key)


def test_client_secret_basic_spaces(confidential_server: OAuthServer) -> None:
    rp = make_client(confidential_server, "rp-basic-spaces", "client_secret_basic", SPACES_SECRET)
    code_flow_and_refresh(confidential_server, rp)


def test_client_secret_basic_plus_form_urlencoded(confidential_server: OAuthServer) -> None:
    # authlib puts the secret into Basic as is, without the form-urlencoding RFC 6749
    # §2.3.1 requires, so a `+` or `%` in a secret would arrive changed. Given the encoded
    # secret, it sends exactly what a conforming client sends.
    rp = make_client(
        confidential_server, "rp-basic", "client_secret_basic", quote_plus(BASIC_SECRET)
    )
    code_flow_and_refresh(confidential_server, rp)


def test_client_secret_post(confidential_server: OAuthServer) -> None:
    rp = make_client(confidential_server, "rp-post", "client_secret_post", POST_SECRET)
    code_flow_and_refresh(confidential_server, rp)


def test_private_key_jwt(confidential_server: OAuthServer) -> None:
    key = ECKey.import_key(confidential_server.client_keys["rp-jwt"])
    rp = make_client(confidential_server, "rp-jwt", "private_key_jwt", key)
    code_flow_and_refresh(confidential_server, rp)


def test_private_key_jwt_dpop(confidential_server: OAuthServer) -> None:
    key = ECKey.import_key(confidential_server.client_keys["rp-jwt-dpop"])
    rp = make_client(confidential_server, "rp-jwt-dpop", "private_key_jwt", key)
    code_flow_and_refresh(confidential_server, rp, dpop_key=ec.generate_private_key(ec.SECP256R1()))


def test_confidential_refresh_with_a_wrong_secret_is_invalid_client(
    confidential_server: OAuthServer,
) -> None:
    rp = make_client(confidential_server, "rp-post", "client_secret_post", POST_SECRET)
    meta = confidential_server.meta
    verifier = secrets.token_urlsafe(48)
    url, _ = rp.create_authorization_url(meta["authorization_endpoint"], code_verifier=verifier)
    token = rp.fetch_token(
        meta["token_endpoint"], authorization_response=sign_in(url, confidential_server.url),
        code_verifier=verifier,
    )
    wrong = make_client(confidential_server, "rp-post", "client_secret_post", "not the secret")
    with pytest.raises(OAuthError) as err:
        wrong.refresh_token(meta["token_endpoint"], refresh_token=token["refresh_token"])
    assert err.value.error == "invalid_client"
    public_try = httpx.post(meta["token_endpoint"], data={
        "grant_type": "refresh_token", "refresh_token": token["refresh_token"],
        "client_id": "rp-post",
    })
    assert public_try.status_code in (400, 401), public_try.text
    assert public_try.json()["error"] == "invalid_client"
