"""Discovery (RFC 8414 §2) advertises only grant types that POST /token accepts."""

from __future__ import annotations

import httpx

from did_auth.services import Services


async def test_every_advertised_grant_type_is_accepted(
    api: tuple[httpx.AsyncClient, Services],
) -> None:
    client, _ = api
    meta = (await client.get("/.well-known/openid-configuration")).json()
    assert set(meta["grant_types_supported"]) == {"authorization_code", "refresh_token"}
    for grant in meta["grant_types_supported"]:
        r = await client.post("/token", data={"grant_type": grant, "client_id": "demo"})
        assert 400 <= r.status_code < 500
        assert r.json()["error"] != "unsupported_grant_type", grant
