"""did-auth's own protected resources (`/userinfo`, `/otp/enroll`, `/otp/confirm`) share one
access-token check and answer every refusal with a 401 and the challenge of the scheme the
client used: RFC 6750 §3 `Bearer error=...` for a Bearer request, RFC 9449 §7.1
`DPoP error=..., algs="ES256 EdDSA"` for a DPoP request, and, when the request carries no
credentials, a challenge without error code (RFC 6750 §3.1) offering both schemes.

Before: /userinfo always answered with a Bearer challenge (also to a DPoP request) and a
bad DPoP proof there was a 400 `invalid_dpop_proof` without any challenge, so a DPoP client
(openid-client, oauth4webapi) could not tell what to fix; the /otp routes answered 401
without `WWW-Authenticate` at all (RFC 7235 §3.1: a 401 MUST carry one) and the same 400s.
"""

from __future__ import annotations

import re

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from did_auth_verifier.dpop import make_dpop_proof

from tests.security import oauth_clients as oc
from tests.security.oauth_clients import ISS, Api, siwe_login

oauth_api = oc.oauth_api

ROUTES = [("GET", "/userinfo"), ("POST", "/userinfo"), ("POST", "/otp/enroll"),
          ("POST", "/otp/confirm")]
NO_CREDENTIALS = 'Bearer realm="did-auth", DPoP algs="ES256 EdDSA"'
ALGS = ', algs="ES256 EdDSA"'


def challenge(r: httpx.Response) -> str:
    assert r.status_code == 401, r.text
    assert set(r.json()) == {"error", "error_description"}, r.text
    return str(r.headers["www-authenticate"])


def bearer_error(r: httpx.Response, error: str = "invalid_token") -> None:
    value = challenge(r)
    assert re.fullmatch(rf'Bearer error="{error}", error_description="[^"\\]+"', value), value
    assert r.json()["error"] == error


def dpop_error(r: httpx.Response, errors: tuple[str, ...] = ("invalid_token",)) -> None:
    value = challenge(r)
    match = re.fullmatch(r'DPoP error="([a-z_]+)", error_description="[^"\\]+"' + ALGS, value)
    assert match is not None, value
    assert match.group(1) in errors and r.json()["error"] == match.group(1), value


async def call(
    client: httpx.AsyncClient, method: str, path: str, headers: dict[str, str] | None = None
) -> httpx.Response:
    body = {"otp": "123456"} if path == "/otp/confirm" else None
    return await client.request(method, path, headers=headers or {}, json=body)


async def dpop_token(client: httpx.AsyncClient, key: ec.EllipticCurvePrivateKey) -> str:
    proof = make_dpop_proof(key, htm="POST", htu=ISS + "/siwe/verify")
    # A token for did-auth itself: its own resources refuse every other audience (RFC 9068 §4).
    r = await siwe_login(client, headers={"DPoP": proof}, extra={"audience": ISS})
    assert r.status_code == 200 and r.json()["token_type"] == "DPoP", r.text
    return str(r.json()["access_token"])


async def bearer_token(client: httpx.AsyncClient) -> str:
    r = await siwe_login(client, extra={"audience": ISS})
    assert r.status_code == 200 and r.json()["token_type"] == "Bearer", r.text
    return str(r.json()["access_token"])


@pytest.mark.parametrize(("method", "path"), ROUTES)
async def test_no_credentials_get_a_challenge_without_error_code(
    oauth_api: Api, method: str, path: str
) -> None:
    client, _ = oauth_api
    for headers in (
        {},
        {"Authorization": "Basic ZGFwcDp4"},  # a scheme these resources do not take
        {"Authorization": "Bearer"},
        {"Authorization": "DPoP "},
    ):
        r = await call(client, method, path, headers)
        assert challenge(r) == NO_CREDENTIALS, headers
        assert r.json()["error"] == "invalid_token"


@pytest.mark.parametrize(("method", "path"), ROUTES)
async def test_bearer_requests_get_bearer_challenges(
    oauth_api: Api, method: str, path: str
) -> None:
    client, _ = oauth_api
    key = ec.generate_private_key(ec.SECP256R1())
    bound = await dpop_token(client, key)
    for token in ("not-a-token", "a b c", bound):  # garbage, malformed, DPoP-bound as bearer
        bearer_error(await call(client, method, path, {"Authorization": f"Bearer {token}"}))


@pytest.mark.parametrize(("method", "path"), ROUTES)
async def test_dpop_requests_get_dpop_challenges(oauth_api: Api, method: str, path: str) -> None:
    client, _ = oauth_api
    key = ec.generate_private_key(ec.SECP256R1())
    other = ec.generate_private_key(ec.SECP256R1())
    bound = await dpop_token(client, key)
    htu = ISS + path

    def auth(token: str) -> dict[str, str]:
        return {"Authorization": f"DPoP {token}"}

    # Not a live token of ours; a bearer token presented with the DPoP scheme.
    dpop_error(await call(client, method, path, auth("not-a-token")))
    dpop_error(await call(client, method, path, auth(await bearer_token(client))))
    # The attack: a stolen DPoP-bound token without a proof, with another key's proof, with
    # a proof for another URL, and a proof whose ath is for another token.
    for headers in (
        {},
        {"DPoP": make_dpop_proof(other, htm=method, htu=htu, access_token=bound)},
        {"DPoP": make_dpop_proof(key, htm=method, htu=ISS + "/elsewhere", access_token=bound)},
        {"DPoP": make_dpop_proof(key, htm=method, htu=htu, access_token="another-token")},
    ):
        r = await call(client, method, path, {**auth(bound), **headers})
        dpop_error(r, ("invalid_token", "invalid_dpop_proof"))


async def test_userinfo_with_the_right_proof(oauth_api: Api) -> None:
    client, _ = oauth_api
    key = ec.generate_private_key(ec.SECP256R1())
    bound = await dpop_token(client, key)
    proof = make_dpop_proof(key, htm="GET", htu=ISS + "/userinfo", access_token=bound)
    r = await client.get("/userinfo", headers={"Authorization": f"DPoP {bound}", "DPoP": proof})
    assert r.status_code == 200 and r.json()["sub"].startswith("did:pkh:eip155:"), r.text
    # A proof is single use (RFC 9449 §11.1): replayed, it gets the DPoP challenge.
    r = await client.get("/userinfo", headers={"Authorization": f"DPoP {bound}", "DPoP": proof})
    dpop_error(r, ("invalid_dpop_proof",))
    # Bearer tokens still work as bearer tokens.
    token = await bearer_token(client)
    r = await client.get("/userinfo", headers={"Authorization": f"bearer {token}"})
    assert r.status_code == 200, r.text
