"""DPoP-bound tokens, step-up with TOTP, introspection and revocation (in process, both stores)."""

from __future__ import annotations

import base64
import time

import httpx
import jwt
import pyotp
from cryptography.hazmat.primitives.asymmetric import ec

from did_auth.core.clock import FixedClock
from did_auth.core.oauth.client_auth import hash_secret
from did_auth.services import Services
from did_auth.verifier._jose import public_jwk
from did_auth.verifier.dpop import jwk_thumbprint, make_dpop_proof
from tests import siwe_text
from tests.edge.api.test_siwe_flow import nonce
from tests.fixtures.servers import CLIENT, running_app, settings_for

Api = tuple[httpx.AsyncClient, Services]
ISS = "http://testserver"


async def signed_login(client: httpx.AsyncClient, key: bytes, address: str, **kw: object) -> httpx.Response:
    headers = kw.pop("headers", None)
    text = siwe_text.message(address, await nonce(client))
    return await client.post(
        "/siwe/verify",
        json={"client_id": "dapp", "message": text, "signature": siwe_text.sign(text, key), **kw},
        headers=headers,  # type: ignore[arg-type]
    )


async def test_dpop_bound_login_and_refresh(api: Api) -> None:
    client, _ = api
    address, key = siwe_text.new_account()
    dpop_key = ec.generate_private_key(ec.SECP256R1())
    proof = make_dpop_proof(dpop_key, htm="POST", htu=f"{ISS}/siwe/verify")
    r = await signed_login(client, key, address, headers={"DPoP": proof})
    assert r.status_code == 200, r.text
    tok = r.json()
    assert tok["token_type"] == "DPoP"
    claims = jwt.decode(tok["access_token"], options={"verify_signature": False})
    _, jwk = public_jwk(dpop_key.public_key())
    assert claims["cnf"]["jkt"] == jwk_thumbprint(jwk)
    form = {"grant_type": "refresh_token", "client_id": "dapp", "refresh_token": tok["refresh_token"]}
    # refresh without a proof, or with another key's proof: refused (RFC 9449 §5)
    r = await client.post("/token", data=form)
    assert r.status_code == 400 and r.json()["error"] == "invalid_dpop_proof"
    other = make_dpop_proof(ec.generate_private_key(ec.SECP256R1()), htm="POST", htu=f"{ISS}/token")
    r = await client.post("/token", data=form, headers={"DPoP": other})
    assert r.status_code in (400, 401), r.text
    good = make_dpop_proof(dpop_key, htm="POST", htu=f"{ISS}/token")
    r = await client.post("/token", data=form, headers={"DPoP": good})
    assert r.status_code == 200, r.text
    assert r.json()["token_type"] == "DPoP"
    # the same proof again: replay
    r = await client.post("/token", data={**form, "refresh_token": r.json()["refresh_token"]},
                          headers={"DPoP": good})
    assert r.status_code == 400 and r.json()["error"] == "invalid_dpop_proof"


async def test_dpop_proof_for_other_url_or_method_rejected(api: Api) -> None:
    client, _ = api
    address, key = siwe_text.new_account()
    k = ec.generate_private_key(ec.SECP256R1())
    for proof in (
        make_dpop_proof(k, htm="POST", htu=f"{ISS}/token"),
        make_dpop_proof(k, htm="GET", htu=f"{ISS}/siwe/verify"),
        make_dpop_proof(k, htm="POST", htu=f"{ISS}/siwe/verify", iat=time.time() - 3600),
        "not.a.jwt",
    ):
        r = await signed_login(client, key, address, headers={"DPoP": proof})
        assert r.status_code == 400 and r.json()["error"] == "invalid_dpop_proof", r.text


async def test_client_requiring_dpop() -> None:
    cfg = settings_for(clients=[{**CLIENT, "require_dpop": True}])
    async with running_app(cfg) as (client, _):
        address, key = siwe_text.new_account()
        r = await signed_login(client, key, address)
        assert r.status_code == 400 and r.json()["error"] == "invalid_dpop_proof"
        k = ec.generate_private_key(ec.SECP256R1())
        r = await signed_login(client, key, address,
                               headers={"DPoP": make_dpop_proof(k, htm="POST", htu=f"{ISS}/siwe/verify")})
        assert r.status_code == 200 and r.json()["token_type"] == "DPoP"


async def test_server_dpop_nonce() -> None:
    async with running_app(settings_for(dpop_nonce=True)) as (client, _):
        address, key = siwe_text.new_account()
        k = ec.generate_private_key(ec.SECP256R1())
        r = await signed_login(client, key, address,
                               headers={"DPoP": make_dpop_proof(k, htm="POST", htu=f"{ISS}/siwe/verify")})
        assert r.status_code == 400 and r.json()["error"] == "use_dpop_nonce"
        server_nonce = r.headers["DPoP-Nonce"]
        proof = make_dpop_proof(k, htm="POST", htu=f"{ISS}/siwe/verify", nonce=server_nonce)
        r = await signed_login(client, key, address, headers={"DPoP": proof})
        assert r.status_code == 200, r.text
        assert r.headers.get("DPoP-Nonce")


async def enroll_otp(client: httpx.AsyncClient, access_token: str) -> pyotp.TOTP:
    r = await client.post("/otp/enroll", headers={"Authorization": f"Bearer {access_token}"})
    assert r.status_code == 200, r.text
    totp = pyotp.TOTP(r.json()["secret"])
    r = await client.post("/otp/confirm", json={"otp": totp.now()},
                          headers={"Authorization": f"Bearer {access_token}"})
    assert r.status_code == 200, r.text
    return totp


async def test_step_up_withdrawal(api: Api) -> None:
    client, _svc = api
    address, key = siwe_text.new_account()
    # did-auth's own OTP routes take only a token for did-auth itself (RFC 9068 §4)
    first = (await signed_login(client, key, address, audience=ISS)).json()
    # no step-up without a second factor
    r = await signed_login(client, key, address, scope="wallet:withdraw")
    assert r.status_code == 400 and r.json()["error"] == "invalid_scope"
    totp = await enroll_otp(client, first["access_token"])
    # a wrong code fails and does not give the scope
    r = await signed_login(client, key, address, scope="account:read wallet:withdraw", otp="000000")
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
    # the confirm step used the current code: the same code cannot be used again (RFC 6238 §5.2)
    r = await signed_login(client, key, address, scope="wallet:withdraw", otp=totp.now())
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
    code = totp.at(time.time() + 30)  # next time step (one step of drift is allowed)
    r = await signed_login(client, key, address, scope="account:read wallet:withdraw", otp=code)
    assert r.status_code == 200, r.text
    tok = r.json()
    claims = jwt.decode(tok["access_token"], options={"verify_signature": False})
    assert claims["amr"] == ["siwe", "otp"]
    assert claims["exp"] - claims["iat"] == 60 and tok["expires_in"] == 60  # scope's max_ttl
    assert "wallet:withdraw" in claims["scope"].split()


async def test_otp_guessing_backs_off(api: Api) -> None:
    client, _ = api
    address, key = siwe_text.new_account()
    first = (await signed_login(client, key, address, audience=ISS)).json()
    await enroll_otp(client, first["access_token"])
    codes = []
    for guess in ("111111", "222222", "333333", "444444", "555555"):
        r = await signed_login(client, key, address, scope="wallet:withdraw", otp=guess)
        codes.append(r.status_code)
        if r.status_code == 429:
            assert int(r.headers["Retry-After"]) >= 1
            assert r.json()["error"] == "slow_down"
    assert codes[:3] == [400, 400, 400] and 429 in codes[3:]


async def test_introspection(api: Api) -> None:
    client, _svc = api
    address, key = siwe_text.new_account()
    tok = (await signed_login(client, key, address)).json()
    secret = "rs-secret-" + base64.b32encode(b"0123456789").decode()
    # resource servers are configured with the hash of their secret only
    cfg = settings_for(resource_servers=[{"name": "trading-api", "secret_hash": hash_secret(secret)}])
    async with running_app(cfg) as (c2, _):
        t2 = (await signed_login(c2, key, address)).json()
        auth = ("trading-api", secret)
        r = await c2.post("/introspect", data={"token": t2["access_token"]}, auth=auth)
        body = r.json()
        assert r.status_code == 200 and body["active"] is True
        assert body["sub"].endswith(address) and body["scope"] == "account:read"
        # refresh tokens are never sent to resource servers (RFC 6749 §1.5): inactive to them
        r = await c2.post("/introspect", data={"token": t2["refresh_token"]}, auth=auth)
        assert r.json() == {"active": False}
        r = await c2.post("/introspect", data={"token": t2["access_token"]}, auth=("trading-api", "wrong"))
        assert r.status_code == 401 and r.json()["error"] == "invalid_client"
        r = await c2.post("/introspect", data={"token": t2["access_token"]})
        assert r.status_code == 401
        r = await c2.post("/revoke", data={"token": t2["access_token"], "client_id": "dapp"})
        assert r.status_code == 200, r.text
        r = await c2.post("/introspect", data={"token": t2["access_token"]}, auth=auth)
        assert r.json() == {"active": False}
        r = await c2.post("/introspect", data={"token": t2["refresh_token"]}, auth=auth)
        assert r.json() == {"active": False}
        r = await c2.post("/introspect", data={"token": "garbage"}, auth=auth)
        assert r.json() == {"active": False}
    assert tok["access_token"]


async def test_refresh_drops_stale_step_up(api: Api) -> None:
    client, svc = api
    address, key = siwe_text.new_account()
    first = (await signed_login(client, key, address, audience=ISS)).json()
    totp = await enroll_otp(client, first["access_token"])
    tok = (await signed_login(client, key, address, scope="account:read wallet:withdraw",
                              otp=totp.at(time.time() + 30))).json()
    form = {"grant_type": "refresh_token", "client_id": "dapp", "refresh_token": tok["refresh_token"]}
    r = await client.post("/token", data=form)
    assert r.status_code == 200 and "wallet:withdraw" in r.json()["scope"]  # still fresh
    refresh_grant = svc.token_endpoint.handlers["refresh_token"]
    # The login is now older than step_up_max_age by the refresh grant's (injected) clock.
    refresh_grant.clock = FixedClock(time.time() + svc.settings.step_up_max_age + 1)  # type: ignore[attr-defined]
    import asyncio

    form["refresh_token"] = r.json()["refresh_token"]
    r = await client.post("/token", data={**form, "scope": "wallet:withdraw"})
    assert r.status_code == 400 and r.json()["error"] == "invalid_scope"
    # the refused request rotated nothing: the same refresh token still works, once
    r = await client.post("/token", data=form)
    assert r.status_code == 200 and r.json()["scope"] == "account:read"
    await asyncio.sleep(0)
