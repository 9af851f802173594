"""The SIWE login over HTTP, in process, against both stores (memory and real Redis)."""

from __future__ import annotations

import time

import httpx
import jwt
import pytest

from did_auth.services import Services
from tests import siwe_text
from tests.fixtures.servers import running_app, settings_for

Api = tuple[httpx.AsyncClient, Services]


async def nonce(client: httpx.AsyncClient, client_id: str = "dapp") -> str:
    r = await client.post("/siwe/nonce", json={"client_id": client_id})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["expires_in"] > 0 and len(body["nonce"]) >= 16 and body["nonce"].isalnum()
    return str(body["nonce"])


async def login(client: httpx.AsyncClient, **kw: object) -> httpx.Response:
    address, key = siwe_text.new_account()
    text = siwe_text.message(address, await nonce(client))
    body = {"client_id": "dapp", "message": text, "signature": siwe_text.sign(text, key), **kw}
    return await client.post("/siwe/verify", json=body)


def jwks_keys(jwks: dict) -> dict[str, jwt.PyJWK]:  # type: ignore[type-arg]
    return {k["kid"]: jwt.PyJWK(k) for k in jwks["keys"]}


async def test_login_issues_rfc9068_token(api: Api) -> None:
    client, _ = api
    address, key = siwe_text.new_account()
    text = siwe_text.message(address, await nonce(client))
    r = await client.post(
        "/siwe/verify",
        json={"client_id": "dapp", "message": text, "signature": siwe_text.sign(text, key)},
    )
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "no-store"
    tok = r.json()
    assert tok["token_type"] == "Bearer" and tok["scope"] == "account:read"
    assert tok["expires_in"] == 300 and tok["refresh_token"]
    header = jwt.get_unverified_header(tok["access_token"])
    assert header["typ"] == "at+jwt" and header["alg"] == "ES256"
    keys = jwks_keys((await client.get("/.well-known/jwks.json")).json())
    claims = jwt.decode(
        tok["access_token"], keys[header["kid"]], algorithms=["ES256"],
        audience="trading-api", issuer="http://testserver",
        options={"require": ["exp", "iat", "iss", "aud", "sub", "jti"]},
    )
    assert claims["sub"] == f"did:pkh:eip155:31337:{address}"
    assert claims["client_id"] == "dapp" and claims["amr"] == ["siwe"]
    assert claims["scope"] == "account:read"
    assert claims["sid"].startswith("0x") and len(claims["sid"]) == 66
    assert abs(claims["auth_time"] - time.time()) < 5
    assert claims["exp"] - claims["iat"] == 300


async def test_replay_same_message_rejected(api: Api) -> None:
    client, _ = api
    address, key = siwe_text.new_account()
    text = siwe_text.message(address, await nonce(client))
    body = {"client_id": "dapp", "message": text, "signature": siwe_text.sign(text, key)}
    assert (await client.post("/siwe/verify", json=body)).status_code == 200
    r = await client.post("/siwe/verify", json=body)
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"


async def test_nonce_never_issued_rejected(api: Api) -> None:
    client, _ = api
    address, key = siwe_text.new_account()
    text = siwe_text.message(address, "notissuedbyserver123")
    r = await client.post(
        "/siwe/verify",
        json={"client_id": "dapp", "message": text, "signature": siwe_text.sign(text, key)},
    )
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"


async def test_forged_signature_rejected_and_nonce_survives(api: Api) -> None:
    client, _ = api
    victim, _ = siwe_text.new_account()
    _, attacker_key = siwe_text.new_account()
    n = await nonce(client)
    text = siwe_text.message(victim, n)
    r = await client.post(
        "/siwe/verify",
        json={"client_id": "dapp", "message": text, "signature": siwe_text.sign(text, attacker_key)},
    )
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
    # the failed attempt changed no state: the nonce is still usable by the real owner
    owner, owner_key = siwe_text.new_account()
    text2 = siwe_text.message(owner, n)
    r2 = await client.post(
        "/siwe/verify",
        json={"client_id": "dapp", "message": text2, "signature": siwe_text.sign(text2, owner_key)},
    )
    assert r2.status_code == 200, r2.text


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"domain": "evil.example"}, "invalid_grant"),
        ({"domain": "localhost:3001"}, "invalid_grant"),
        ({"uri": "http://localhost:3000.evil.example/login"}, "invalid_request"),  # bad port
        ({"uri": "http://localhost:3000@evil.example/login"}, "invalid_grant"),
        ({"uri": "http://localhost.evil.example:3000/login"}, "invalid_grant"),
        ({"uri": "https://localhost:3000/login"}, "invalid_grant"),
        ({"chain_id": 5}, "invalid_request"),
        ({"issued_at": time.time() + 3600}, "invalid_grant"),
        ({"expiration": time.time() - 3600, "issued_at": time.time() - 7200}, "invalid_grant"),
        ({"not_before": time.time() + 3600}, "invalid_grant"),
    ],
)
async def test_message_policy_checks(api: Api, change: dict, error: str) -> None:  # type: ignore[type-arg]
    client, _ = api
    address, key = siwe_text.new_account()
    n = await nonce(client)
    text = siwe_text.message(address, n, **change)
    r = await client.post(
        "/siwe/verify",
        json={"client_id": "dapp", "message": text, "signature": siwe_text.sign(text, key)},
    )
    assert r.status_code in (400, 401, 403), r.text
    assert r.json()["error"] == error
    # nonce not burnt by a rejected request
    ok = siwe_text.message(address, n)
    r2 = await client.post(
        "/siwe/verify", json={"client_id": "dapp", "message": ok, "signature": siwe_text.sign(ok, key)}
    )
    assert r2.status_code == 200, r2.text


async def test_scopes_and_audience(api: Api) -> None:
    client, _ = api
    r = await login(client, scope="account:read trade:write", audience="other-api")
    assert r.status_code == 200, r.text
    assert r.json()["scope"] == "account:read trade:write"
    claims = jwt.decode(r.json()["access_token"], options={"verify_signature": False})
    assert claims["aud"] == "other-api"
    r = await login(client, scope="account:read admin:all")
    assert r.status_code == 400 and r.json()["error"] == "invalid_scope"
    r = await login(client, audience="someone-else")
    assert r.status_code == 400 and r.json()["error"] == "invalid_scope"
    # step-up scopes are never granted by a plain login
    r = await login(client, scope="wallet:withdraw")
    assert r.status_code == 400 and r.json()["error"] == "invalid_scope"


async def test_nonce_for_another_client_rejected() -> None:
    cfg = settings_for(clients=[
        {"client_id": "dapp", "domains": ["localhost:3000"], "uris": ["http://localhost:3000"],
         "chain_ids": [31337], "audiences": ["trading-api"], "scopes": ["account:read"],
         "default_scopes": ["account:read"]},
        {"client_id": "other", "domains": ["localhost:3000"], "uris": ["http://localhost:3000"],
         "chain_ids": [31337], "audiences": ["trading-api"], "scopes": ["account:read"],
         "default_scopes": ["account:read"]},
    ])
    async with running_app(cfg) as (client, _):
        address, key = siwe_text.new_account()
        n = await nonce(client, "other")
        text = siwe_text.message(address, n)
        sig = siwe_text.sign(text, key)
        r = await client.post("/siwe/verify", json={"client_id": "dapp", "message": text, "signature": sig})
        assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
        r = await client.post("/siwe/verify", json={"client_id": "other", "message": text, "signature": sig})
        assert r.status_code == 200


async def test_refresh_rotates_and_narrows(api: Api) -> None:
    client, _ = api
    tok = (await login(client, scope="account:read trade:write")).json()
    form = {"grant_type": "refresh_token", "client_id": "dapp", "refresh_token": tok["refresh_token"]}
    r = await client.post("/token", data={**form, "scope": "account:read"})
    assert r.status_code == 200, r.text
    new = r.json()
    assert new["scope"] == "account:read" and new["refresh_token"] != tok["refresh_token"]
    r = await client.post("/token", data={**form, "refresh_token": new["refresh_token"],
                                          "scope": "account:read wallet:withdraw"})
    assert r.status_code == 400 and r.json()["error"] == "invalid_scope"
    r = await client.post("/token", data={**form, "refresh_token": new["refresh_token"],
                                          "client_id": "nobody"})
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"


async def test_revoke_kills_refresh(api: Api) -> None:
    client, _ = api
    tok = (await login(client)).json()
    r = await client.post("/revoke", data={"token": tok["access_token"], "client_id": "dapp"})
    assert r.status_code == 200
    r = await client.post("/token", data={"grant_type": "refresh_token", "client_id": "dapp",
                                          "refresh_token": tok["refresh_token"]})
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
    assert (await client.post("/revoke", data={"token": "garbage", "client_id": "dapp"})).status_code == 200


async def test_discovery_and_jwks(api: Api) -> None:
    client, _ = api
    d = (await client.get("/.well-known/openid-configuration")).json()
    assert d["issuer"] == "http://testserver"
    assert d["jwks_uri"] == "http://testserver/.well-known/jwks.json"
    for k in ("token_endpoint", "revocation_endpoint", "introspection_endpoint",
              "scopes_supported", "dpop_signing_alg_values_supported"):
        assert k in d
    keys = (await client.get("/.well-known/jwks.json")).json()["keys"]
    assert keys and all({"kid", "alg", "use"} <= set(k) and "d" not in k for k in keys)


async def test_eddsa_selectable() -> None:
    async with running_app(settings_for(signing_alg="EdDSA")) as (client, _):
        tok = (await login(client)).json()
        header = jwt.get_unverified_header(tok["access_token"])
        assert header["alg"] == "EdDSA"
        keys = jwks_keys((await client.get("/.well-known/jwks.json")).json())
        jwt.decode(tok["access_token"], keys[header["kid"]], algorithms=["EdDSA"],
                   audience="trading-api")
