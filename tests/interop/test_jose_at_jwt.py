"""jose 6 (npm, panva) validates did-auth access tokens as RFC 9068 JWTs.

A resource server in JavaScript verifies with `jwtVerify(token, createRemoteJWKSet(jwks_uri),
{issuer, audience, typ: "at+jwt", algorithms: ["ES256"]})`. The access tokens of a code flow
(and of its refresh, and of a DPoP-bound flow) must pass; the ID token, signed by the same
key, must not pass as an access token, whatever audience the resource server expects; a
token whose payload was changed must fail its signature (tests/interop/jose_verify.mjs).
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
from cryptography.hazmat.primitives.asymmetric import ec

from did_auth.verifier import jwk_thumbprint, make_dpop_proof
from did_auth.verifier._jose import public_jwk
from tests.interop.rp_harness import AUDIENCE, CALLBACK, OAuthServer, run_node, sign_in

AT_CLAIMS = ["iss", "exp", "aud", "sub", "client_id", "iat", "jti"]  # RFC 9068 §2.2


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def code_flow(
    server: OAuthServer, client_id: str, dpop_key: ec.EllipticCurvePrivateKey | None = None
) -> dict[str, Any]:
    """Code + PKCE by hand (public client), then one refresh; returns both responses."""
    verifier = secrets.token_urlsafe(48)
    params = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": CALLBACK,
        "scope": "openid account:read trade:write",
        "state": secrets.token_urlsafe(8),
        "nonce": secrets.token_urlsafe(8),
        "code_challenge": b64u(hashlib.sha256(verifier.encode()).digest()),
        "code_challenge_method": "S256",
    }
    if dpop_key is not None:
        params["dpop_jkt"] = jwk_thumbprint(public_jwk(dpop_key.public_key())[1])
    redirect = sign_in(f"{server.url}/authorize?{urlencode(params)}", server.url)
    code = parse_qs(urlsplit(redirect).query)["code"][0]

    def dpop() -> dict[str, str]:
        if dpop_key is None:
            return {}
        return {"DPoP": make_dpop_proof(dpop_key, htm="POST", htu=f"{server.url}/token")}

    first = httpx.post(f"{server.url}/token", headers=dpop(), data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK,
        "client_id": client_id, "code_verifier": verifier,
    })
    assert first.status_code == 200, first.text
    second = httpx.post(f"{server.url}/token", headers=dpop(), data={
        "grant_type": "refresh_token", "refresh_token": first.json()["refresh_token"],
        "client_id": client_id,
    })
    assert second.status_code == 200, second.text
    return {"code": first.json(), "refresh": second.json()}


def jose_verify(server: OAuthServer, cases: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return run_node("jose_verify.mjs", {
        "jwks_uri": server.meta["jwks_uri"], "issuer": server.url, "cases": cases, **extra,
    })


def tampered(token: str) -> str:
    head, payload, sig = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["scope"] = "account:read trade:write wallet:withdraw"
    return ".".join([head, b64u(json.dumps(claims).encode()), sig])


def test_access_tokens_pass_jose_rfc9068_and_the_id_token_does_not(
    public_server: OAuthServer,
) -> None:
    tokens = code_flow(public_server, "rp-public")
    at, id_token = tokens["code"]["access_token"], tokens["code"]["id_token"]
    out = jose_verify(public_server, [
        {"name": "access", "token": at, "audience": AUDIENCE, "typ": "at+jwt",
         "requiredClaims": AT_CLAIMS},
        {"name": "refreshed", "token": tokens["refresh"]["access_token"], "audience": AUDIENCE,
         "typ": "at+jwt", "requiredClaims": AT_CLAIMS},
        # The ID token (typ JWT) is never an access token: for the API or for the client.
        {"name": "id_as_at", "token": id_token, "audience": AUDIENCE, "typ": "at+jwt"},
        {"name": "id_as_at_client", "token": id_token, "audience": "rp-public", "typ": "at+jwt"},
        # ... while it is a valid ID token (so the refusal above is about what it is).
        {"name": "id_as_id", "token": id_token, "audience": "rp-public", "typ": "JWT"},
        # An access token is not an ID token either.
        {"name": "at_as_id", "token": at, "audience": AUDIENCE, "typ": "JWT"},
        {"name": "tampered", "token": tampered(at), "audience": AUDIENCE, "typ": "at+jwt"},
    ])["cases"]
    for name in ("access", "refreshed"):
        assert out[name]["ok"], out[name]
        assert out[name]["header"]["typ"] == "at+jwt" and out[name]["header"]["alg"] == "ES256"
        assert out[name]["payload"]["client_id"] == "rp-public"
        assert "cnf" not in out[name]["payload"]
    assert out["access"]["payload"]["sub"] == out["refreshed"]["payload"]["sub"]
    for name in ("id_as_at", "id_as_at_client", "at_as_id"):
        assert not out[name]["ok"], out[name]
        assert out[name]["code"] == "ERR_JWT_CLAIM_VALIDATION_FAILED", out[name]
        assert out[name]["claim"] == "typ", out[name]
    assert out["id_as_id"]["ok"], out["id_as_id"]
    assert out["id_as_id"]["payload"]["sub"] == out["access"]["payload"]["sub"]
    assert out["tampered"]["code"] == "ERR_JWS_SIGNATURE_VERIFICATION_FAILED", out["tampered"]


def test_dpop_bound_access_tokens_carry_the_key_thumbprint(public_server: OAuthServer) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    tokens = code_flow(public_server, "rp-dpop", key)
    assert tokens["code"]["token_type"] == "DPoP" and tokens["refresh"]["token_type"] == "DPoP"
    jwk = public_jwk(key.public_key())[1]
    out = jose_verify(public_server, [
        {"name": "access", "token": tokens["code"]["access_token"], "audience": AUDIENCE,
         "typ": "at+jwt", "requiredClaims": [*AT_CLAIMS, "cnf"]},
        {"name": "refreshed", "token": tokens["refresh"]["access_token"], "audience": AUDIENCE,
         "typ": "at+jwt", "requiredClaims": [*AT_CLAIMS, "cnf"]},
        {"name": "id_as_at", "token": tokens["code"]["id_token"], "audience": AUDIENCE,
         "typ": "at+jwt"},
    ], thumbprints={"dpop": jwk})
    jkt = out["thumbprints"]["dpop"]  # RFC 7638 as jose computes it
    for name in ("access", "refreshed"):
        assert out["cases"][name]["ok"], out["cases"][name]
        assert out["cases"][name]["payload"]["cnf"] == {"jkt": jkt}  # RFC 9449 §6.1
    assert out["cases"]["id_as_at"]["claim"] == "typ", out["cases"]["id_as_at"]
