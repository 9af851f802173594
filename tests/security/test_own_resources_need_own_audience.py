"""did-auth's own protected resources accept only access tokens issued *for did-auth*.

The attack: a dApp logs its user in for one of its APIs (`aud` `trading-api`, or
`other-api`). That API, or anyone it leaks the token to, replays the token at did-auth:
`POST /otp/enroll` answered 200 with a fresh TOTP secret and `POST /otp/confirm` enrolled
it, so the attacker held the victim's step-up factor and the victim's own enrolment was
refused ("already enrolled"); `/userinfo` answered for any audience as well.

RFC 9068 §4: "The resource server MUST validate that the aud claim contains a resource
indicator value corresponding to an identifier the resource server expects for itself."
did-auth's identifier is its issuer URL. Now:

- `/otp/enroll`, `/otp/confirm`: `aud` must be exactly the issuer (a single audience), got
  by logging in with `audience=<issuer>` (implicitly allowed for every client);
- `/userinfo`: `aud` must contain the issuer: such a login, or the OIDC code flow, whose
  access tokens carry `aud: [<api audience>, <issuer>]` (OIDC Core §5.3.1: the access
  token "obtained from an OpenID Connect Authentication Request"). Such a token is still
  refused by the OTP endpoints, so the API it is sent to cannot enrol a factor with it.

Refusals are 401 `invalid_token` with the challenge (RFC 9068 §4, RFC 6750 §3.1). Real Redis.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import jwt
import pyotp
import pytest
from eth_account import Account

from did_auth.core.did.jwt_proof import sign_proof
from did_auth.services import Services
from tests import siwe_text
from tests.edge.web.test_oidc import code_for, exchange, oidc_app, oidc_settings
from tests.fixtures.redis_server import RedisServer
from tests.fixtures.servers import running_app, settings_for

ISS = "http://testserver"
Api = tuple[httpx.AsyncClient, Services]


@pytest.fixture
async def api(redis_server: RedisServer, session_kek: str) -> AsyncIterator[Api]:
    async with running_app(
        settings_for(redis_url=redis_server.url, key_encryption_key_file=session_kek)
    ) as pair:
        yield pair


async def siwe(client: httpx.AsyncClient, key: bytes, **kw: Any) -> httpx.Response:
    r = await client.post("/siwe/nonce", json={"client_id": "dapp"})
    assert r.status_code == 200, r.text
    text = siwe_text.message(Account.from_key(key).address, r.json()["nonce"])
    return await client.post("/siwe/verify", json={
        "client_id": "dapp", "message": text, "signature": siwe_text.sign(text, key), **kw})


async def token(client: httpx.AsyncClient, key: bytes, **kw: Any) -> str:
    r = await siwe(client, key, **kw)
    assert r.status_code == 200, r.text
    return str(r.json()["access_token"])


def aud(access_token: str) -> object:
    return jwt.decode(access_token, options={"verify_signature": False})["aud"]


def bearer(access_token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {access_token}"}


def refused(r: httpx.Response) -> None:
    # RFC 9068 §4: a failed check is answered as RFC 6750 §3.1 `invalid_token`.
    assert r.status_code == 401, r.text
    assert r.json()["error"] == "invalid_token", r.text
    assert r.headers["www-authenticate"].startswith('Bearer error="invalid_token"'), r.headers


@pytest.mark.parametrize("api_audience", ["trading-api", "other-api", None])
async def test_an_api_cannot_enrol_its_own_factor_with_the_users_token(
    api: Api, api_audience: str | None
) -> None:
    client, svc = api
    acct = Account.create()
    key = bytes(acct.key)
    extra = {} if api_audience is None else {"audience": api_audience}
    stolen = await token(client, key, **extra)  # fresh, live, for the API's audience
    assert aud(stolen) == (api_audience or "trading-api")

    r = await client.post("/otp/enroll", headers=bearer(stolen))
    refused(r)
    assert "secret" not in r.json()
    refused(await client.post("/otp/confirm", headers=bearer(stolen),
                              json={"otp": pyotp.TOTP(pyotp.random_base32()).now()}))
    for method in ("GET", "POST"):
        refused(await client.request(method, "/userinfo", headers=bearer(stolen)))
    sub = f"did:pkh:eip155:31337:{acct.address}"
    assert not await svc.otp.enrolled(sub)

    # The user's own enrolment, with a login for did-auth itself (audience = the issuer).
    own = await token(client, key, audience=ISS)
    assert aud(own) == ISS
    r = await client.post("/otp/enroll", headers=bearer(own))
    assert r.status_code == 200, r.text
    secret = r.json()["secret"]
    r = await client.post("/otp/confirm", headers=bearer(own),
                          json={"otp": pyotp.TOTP(secret).now()})
    assert r.status_code == 200 and r.json()["enrolled"] is True, r.text
    r = await client.get("/userinfo", headers=bearer(own))
    assert r.status_code == 200 and r.json()["sub"] == sub, r.text


async def test_the_issuer_audience_through_did_login(api: Api) -> None:
    client, _ = api
    acct = Account.create()
    did = f"did:pkh:eip155:31337:{acct.address}"
    r = await client.post("/did/challenge", json={"client_id": "dapp", "did": did,
                                                  "audience": ISS})
    assert r.status_code == 200 and r.json()["audience"] == ISS, r.text
    now = int(time.time())
    proof = sign_proof({"iss": did, "aud": ISS, "nonce": r.json()["challenge"], "iat": now,
                        "exp": now + 60}, alg="ES256K-R", private_key=bytes(acct.key))
    r = await client.post("/did/verify", json={"client_id": "dapp", "proof": proof})
    assert r.status_code == 200, r.text
    own = r.json()["access_token"]
    assert aud(own) == ISS
    r = await client.post("/otp/enroll", headers=bearer(own))
    assert r.status_code == 200 and "secret" in r.json(), r.text


async def test_an_audience_the_client_does_not_have_is_still_refused(api: Api) -> None:
    client, _ = api
    for audience in (ISS + "/", "https://evil.example", ISS.upper()):
        r = await siwe(client, bytes(Account.create().key), audience=audience)
        assert r.status_code == 400 and r.json()["error"] == "invalid_scope", (audience, r.text)


async def test_code_flow_token_serves_userinfo_but_not_otp(
    redis_server: RedisServer, session_kek: str
) -> None:
    settings = oidc_settings(redis_url=redis_server.url, key_encryption_key_file=session_kek)
    async with oidc_app(settings) as (client, _):
        code, verifier, _ = await code_for(client)
        r = await exchange(client, code, verifier)
        assert r.status_code == 200, r.text
        tokens = r.json()
        access = tokens["access_token"]
        # OIDC Core §5.3: the code flow's access token is the one for UserInfo; it keeps
        # its API audience first, for the API's own RFC 9068 check.
        assert aud(access) == ["trading-api", ISS]
        r = await client.get("/userinfo", headers=bearer(access))
        assert r.status_code == 200 and r.json()["sub"].startswith("did:pkh:"), r.text
        # ... but the API it is sent to cannot use it for did-auth's second-factor routes.
        refused(await client.post("/otp/enroll", headers=bearer(access)))
        refused(await client.post("/otp/confirm", headers=bearer(access), json={"otp": "123456"}))
        # A refreshed access token keeps both audiences.
        r = await client.post("/token", data={"grant_type": "refresh_token",
                                              "refresh_token": tokens["refresh_token"],
                                              "client_id": "strict"})
        assert r.status_code == 200, r.text
        assert aud(r.json()["access_token"]) == ["trading-api", ISS]
        r = await client.get("/userinfo", headers=bearer(r.json()["access_token"]))
        assert r.status_code == 200, r.text
