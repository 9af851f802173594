"""Introspection tells a resource server only about tokens meant for it.

RFC 7662 §4: "If the token can be used only at certain resource servers, the authorization
server MUST determine whether or not the token can be used at the protected resource making
the introspection call." An access token for `other-api` is inactive to `trading-api`.
RFC 6749 §1.5: refresh tokens "are never sent to resource servers", so a resource server
holding one has a leaked token: introspection answers inactive and tells nothing of the
session behind it (sid, subject, expiry)."""

from __future__ import annotations

import secrets

import pytest

from tests.fixtures.servers import running_app
from tests.security import oauth_clients as oc
from tests.security.oauth_clients import basic, siwe_login

RS_SECRET = "rs-secret-for-introspection"


async def test_resource_server_sees_only_its_own_access_tokens(
    store_kind: str, request: pytest.FixtureRequest
) -> None:
    cfg = oc.settings(request, store_kind, resource_servers=[
        {"name": "trading-api", "secret_hash": oc.hash_secret(RS_SECRET)}])
    async with running_app(cfg) as (client, _):
        rs = basic("trading-api", RS_SECRET)
        mine = (await siwe_login(client, extra={"audience": "trading-api"})).json()
        other = (await siwe_login(client, extra={"audience": "other-api"})).json()
        r = await client.post("/introspect", data={"token": mine["access_token"]}, headers=rs)
        assert r.status_code == 200 and r.json()["active"] is True, r.text
        # the attack: trading-api learns about a token of another API
        r = await client.post("/introspect", data={"token": other["access_token"]}, headers=rs)
        assert r.status_code == 200 and r.json() == {"active": False}, r.text
        # ... or about the session behind a leaked refresh token
        r = await client.post("/introspect", data={"token": mine["refresh_token"]}, headers=rs)
        assert r.status_code == 200 and r.json() == {"active": False}, r.text
        # the refresh token itself still works for its client
        r = await client.post("/token", data=oc.refresh_form(mine["refresh_token"], "dapp"))
        assert r.status_code == 200, r.text


async def test_guessing_a_resource_servers_secret_is_budgeted_per_address(
    store_kind: str, request: pytest.FixtureRequest
) -> None:
    """Failed resource-server authentications at /introspect count against the source's
    budget (`refresh_per_ip`, charged before authentication, as at /token and /revoke), so
    a secret cannot be guessed at the speed of the network."""
    limits = {"refresh_per_ip": "3/m", "introspect_per_client": "100000/s"}
    cfg = oc.settings(request, store_kind, rate_limits=limits,
                      trusted_proxies=["127.0.0.1/32"], resource_servers=[
                          {"name": "trading-api", "secret_hash": oc.hash_secret(RS_SECRET)}])
    src = {"X-Forwarded-For": f"198.51.100.{secrets.randbelow(250) + 1}"}
    async with running_app(cfg) as (client, _):
        statuses = []
        for n in range(5):
            r = await client.post("/introspect", data={"token": "x"},
                                  headers={**basic("trading-api", f"guess-{n}"), **src})
            statuses.append(r.status_code)
        assert statuses == [401, 401, 401, 429, 429], statuses
        assert r.json()["error"] == "slow_down" and int(r.headers["Retry-After"]) >= 1
        # another address is not held back by the attacker's guesses
        r = await client.post("/introspect", data={"token": "x"},
                              headers={**basic("trading-api", RS_SECRET),
                                       "X-Forwarded-For": f"192.0.2.{secrets.randbelow(250) + 1}"})
        assert r.status_code == 200 and r.json() == {"active": False}, r.text
