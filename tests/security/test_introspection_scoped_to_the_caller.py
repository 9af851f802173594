"""Introspection tells a resource server only about tokens meant for it.

RFC 7662 §4: "If the token can be used only at certain resource servers, the authorization
server MUST determine whether or not the token can be used at the protected resource making
the introspection call." An access token for `other-api` is inactive to `trading-api`.
RFC 6749 §1.5: refresh tokens "are never sent to resource servers", so a resource server
holding one has a leaked token: introspection answers inactive and tells nothing of the
session behind it (sid, subject, expiry)."""

from __future__ import annotations

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
