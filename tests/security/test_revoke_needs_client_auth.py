"""`/revoke` (RFC 7009 §2.1) authenticates the client through the one client
authentication (public clients send `client_id`); a client revokes only tokens issued to it;
revoking an already revoked, unknown or expired token is a no-op that adds nothing to the
revocation feed; the endpoint is rate limited per client and per IP like /token."""

from __future__ import annotations

import secrets
from typing import Any

import httpx
import jwt
import pytest

from did_auth.core.tokens.issue import Grant
from tests.fixtures.servers import CLIENT, running_app
from tests.security import oauth_clients as oc
from tests.security.oauth_clients import Api, basic, refresh_form, tokens_for

oauth_api = oc.oauth_api


async def _feed(client: httpx.AsyncClient, since: str | None = None) -> dict[str, Any]:
    r = await client.get("/revocations", params={"since": since} if since else None)
    assert r.status_code == 200, r.text
    return dict(r.json())


async def test_revoke_needs_client_authentication(oauth_api: Api) -> None:
    client, _ = oauth_api
    tok = await tokens_for(client, "vault")
    # The attack: revoking a confidential client's token without its credentials.
    r = await client.post("/revoke", data={"token": tok["refresh_token"]})
    assert r.status_code == 400 and r.json()["error"] == "invalid_request", r.text
    r = await client.post("/revoke", data={"token": tok["refresh_token"], "client_id": "vault"})
    assert r.status_code == 401 and r.json()["error"] == "invalid_client", r.text
    r = await client.post("/revoke", data={"token": tok["refresh_token"]},
                          headers=basic("vault", "guess"))
    assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Basic")
    # still live
    r = await client.post("/token", data=refresh_form(tok["refresh_token"]),
                          headers=basic("vault", oc.SECRET))
    assert r.status_code == 200, r.text
    live = r.json()
    r = await client.post("/revoke", data={"token": live["refresh_token"]},
                          headers=basic("vault", oc.SECRET))
    assert r.status_code == 200 and r.content == b""
    r = await client.post("/token", data=refresh_form(live["refresh_token"]),
                          headers=basic("vault", oc.SECRET))
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
    # private_key_jwt at /revoke: aud may be the revocation endpoint itself (authlib's default)
    tok = await tokens_for(client, "bot")
    r = await client.post("/revoke", data={
        "token": tok["access_token"], **oc.jwt_auth(oc.assertion(aud=oc.ISS + "/revoke"))})
    assert r.status_code == 200, r.text


async def test_a_client_cannot_revoke_another_clients_token(oauth_api: Api) -> None:
    client, _ = oauth_api
    victim = await tokens_for(client, "vault")
    start = await _feed(client)
    for token in (victim["refresh_token"], victim["access_token"]):
        # RFC 7009 §2.1: the server "verifies whether the token was issued to the client
        # making the revocation request. If this validation fails, the request is refused".
        r = await client.post("/revoke", data={"token": token, "client_id": "dapp"})
        assert r.status_code == 400 and r.json()["error"] == "invalid_grant", r.text
    assert (await _feed(client, start["cursor"]))["revoked"] == []
    r = await client.post("/token", data=refresh_form(victim["refresh_token"]),
                          headers=basic("vault", oc.SECRET))
    assert r.status_code == 200, r.text


async def test_revoking_twice_adds_nothing_to_the_feed(oauth_api: Api) -> None:
    client, _ = oauth_api
    tok = await tokens_for(client, "dapp")
    sid = jwt.decode(tok["access_token"], options={"verify_signature": False})["sid"]
    start = await _feed(client)
    form = {"token": tok["access_token"], "client_id": "dapp"}
    assert (await client.post("/revoke", data=form)).status_code == 200
    first = await _feed(client, start["cursor"])
    assert sid in {e.get("sid") for e in first["revoked"]}
    # Again, the refresh token of the same (now revoked) session, and garbage: 200, no entry.
    for data in (form, {"token": tok["refresh_token"], "client_id": "dapp"},
                 {"token": "garbage", "client_id": "dapp"},
                 {"token": "rt_" + "A" * 86, "client_id": "dapp"}):
        r = await client.post("/revoke", data=data)
        assert r.status_code == 200, r.text
    assert (await _feed(client, first["cursor"]))["revoked"] == []


async def test_revoking_an_expired_token_is_a_no_op(oauth_api: Api) -> None:
    client, svc = oauth_api
    tok = await tokens_for(client, "dapp")
    claims = jwt.decode(tok["access_token"], options={"verify_signature": False})
    expired = svc.issuer.issue(
        Grant(sub=claims["sub"], client_id="dapp", audience=claims["aud"],
              scopes=("account:read",), auth_time=claims["auth_time"], amr=("siwe",),
              sid=claims["sid"]),
        -120,
    ).token
    start = await _feed(client)
    r = await client.post("/revoke", data={"token": expired, "client_id": "dapp"})
    assert r.status_code == 200
    assert (await _feed(client, start["cursor"]))["revoked"] == []
    # and it did not end the session behind it
    r = await client.post("/token", data=refresh_form(tok["refresh_token"], "dapp"))
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("which", ["client", "ip"])
async def test_revoke_is_rate_limited(
    store_kind: str, request: pytest.FixtureRequest, which: str
) -> None:
    cid = "rl-" + secrets.token_hex(4)
    big = "100000/s"
    limits = {k: big for k in ("nonce_per_ip", "verify_per_ip", "verify_per_subject",
                               "token_per_client", "introspect_per_client", "challenge_per_ip",
                               "refresh_per_ip")}
    limits |= {"outstanding_nonces_per_ip": 100000}
    limits["token_per_client" if which == "client" else "refresh_per_ip"] = "3/m"
    ip = f"198.51.100.{secrets.randbelow(250) + 1}"
    cfg = oc.settings(request, store_kind, clients=[{**CLIENT, "client_id": cid}],
                      rate_limits=limits, trusted_proxies=["127.0.0.1/32"])
    async with running_app(cfg) as (client, _):
        statuses = []
        for _ in range(5):
            r = await client.post("/revoke", data={"token": "garbage", "client_id": cid},
                                  headers={"X-Forwarded-For": ip})
            statuses.append(r.status_code)
        assert statuses[:3] == [200, 200, 200] and statuses[3:] == [429, 429], statuses
        assert r.json()["error"] == "slow_down" and int(r.headers["Retry-After"]) >= 1
