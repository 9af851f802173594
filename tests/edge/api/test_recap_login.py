"""EIP-5573: a ReCap in the signed message grants exactly its scopes (within client policy)."""

from __future__ import annotations

import httpx

from did_auth.core.siwe.recaps import build_recap, recap_statement
from did_auth.services import Services
from tests import siwe_text
from tests.edge.api.test_siwe_flow import nonce

Api = tuple[httpx.AsyncClient, Services]


async def recap_login(client: httpx.AsyncClient, scopes: list[str], audience: str = "trading-api",
                      tamper: bool = False, **body: object) -> httpx.Response:
    address, key = siwe_text.new_account()
    uri, suffix = build_recap(audience, scopes)
    statement = recap_statement("Sign in to the venue.", suffix)
    if tamper:
        statement = statement.replace("trading-api", "trading-apx", 1)
    text = siwe_text.message(address, await nonce(client), statement=statement,
                             resources=["https://localhost:3000/terms", uri])
    return await client.post("/siwe/verify", json={
        "client_id": "dapp", "message": text, "signature": siwe_text.sign(text, key), **body})


async def test_recap_grants_exactly_its_scopes(api: Api) -> None:
    client, _ = api
    r = await recap_login(client, ["account:read", "trade:write"])
    assert r.status_code == 200, r.text
    assert set(r.json()["scope"].split()) == {"account:read", "trade:write"}


async def test_recap_scopes_are_capped_by_client_policy(api: Api) -> None:
    client, _ = api
    r = await recap_login(client, ["account:read", "admin:everything"])
    assert r.status_code == 200 and r.json()["scope"] == "account:read"


async def test_request_cannot_exceed_the_signed_recap(api: Api) -> None:
    client, _ = api
    r = await recap_login(client, ["account:read"], scope="account:read trade:write")
    assert r.status_code == 400 and r.json()["error"] == "invalid_scope"
    r = await recap_login(client, ["account:read", "trade:write"], scope="trade:write")
    assert r.status_code == 200 and r.json()["scope"] == "trade:write"


async def test_recap_for_another_audience_grants_nothing_here(api: Api) -> None:
    client, _ = api
    r = await recap_login(client, ["account:read"], audience="other-api", audience_unused=1)
    assert r.status_code == 400 and r.json()["error"] == "invalid_scope"


async def test_statement_must_carry_the_exact_recap_text(api: Api) -> None:
    client, _ = api
    r = await recap_login(client, ["account:read"], tamper=True)
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"
