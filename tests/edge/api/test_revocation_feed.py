"""RFC 7009 revocation reaches the revocation feed; sessions indexed by account."""

from __future__ import annotations

import httpx
import jwt

from did_auth.services import Services
from tests.edge.api.test_siwe_flow import login

Api = tuple[httpx.AsyncClient, Services]


async def test_revoke_appears_in_feed_and_cursor_resumes(api: Api) -> None:
    client, _ = api
    start = (await client.get("/revocations")).json()
    cursor = start["cursor"]
    tok = (await login(client)).json()
    claims = jwt.decode(tok["access_token"], options={"verify_signature": False})
    assert (await client.post("/revoke", data={"token": tok["access_token"], "client_id": "dapp"})).status_code == 200
    feed = (await client.get("/revocations", params={"since": cursor})).json()
    kinds = {(k, e[k]) for e in feed["revoked"] for k in ("sid", "jti") if k in e}
    assert ("sid", claims["sid"]) in kinds and ("jti", claims["jti"]) in kinds
    assert all(e["exp"] >= claims["exp"] for e in feed["revoked"])
    again = (await client.get("/revocations", params={"since": feed["cursor"]})).json()
    assert again["revoked"] == [] and again["cursor"] == feed["cursor"]


async def test_bad_cursor_is_a_clean_400(api: Api) -> None:
    client, _ = api
    r = await client.get("/revocations", params={"since": "drop table"})
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"


async def test_revoke_account_ends_its_sessions(api: Api) -> None:
    client, svc = api
    from tests import siwe_text
    from tests.edge.api.test_siwe_flow import nonce

    address, key = siwe_text.new_account()
    toks = []
    for _ in range(2):
        text = siwe_text.message(address, await nonce(client))
        r = await client.post("/siwe/verify", json={"client_id": "dapp", "message": text,
                                                    "signature": siwe_text.sign(text, key)})
        toks.append(r.json())
    sids = await svc.revocations.revoke_account(address, before=None, reason="test")
    assert len(sids) == 2
    for t in toks:
        r = await client.post("/token", data={"grant_type": "refresh_token", "client_id": "dapp",
                                              "refresh_token": t["refresh_token"]})
        assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
