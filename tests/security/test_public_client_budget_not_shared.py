"""A public client has no credential, so whoever sends its `client_id` "is" that client:
its per-client budget at /token and /revoke (`token_per_client`) must not be one bucket the
whole internet can drain. The attack: junk refresh tokens from many addresses, each under
its own per-IP limit, spend the public dApp's budget; afterwards every honest user of the
dApp would get 429 on refresh. Public clients are budgeted per client and source address;
confidential clients (authenticated) keep one budget per client."""

from __future__ import annotations

import secrets

import pytest

from tests.fixtures.servers import CLIENT, running_app
from tests.security import oauth_clients as oc
from tests.security.oauth_clients import basic, refresh_form, tokens_for

BIG = "100000/s"
LIMITS = {k: BIG for k in ("nonce_per_ip", "verify_per_ip", "verify_per_subject",
                           "introspect_per_client", "challenge_per_ip", "refresh_per_ip")}
LIMITS |= {"outstanding_nonces_per_ip": 100000, "token_per_client": "3/m"}


def _ip() -> str:
    return f"203.0.113.{secrets.randbelow(250) + 1}"


@pytest.mark.parametrize("endpoint", ["/token", "/revoke"])
async def test_strangers_cannot_drain_a_public_clients_budget(
    store_kind: str, request: pytest.FixtureRequest, endpoint: str
) -> None:
    cid = "dapp-" + secrets.token_hex(4)  # buckets live in the shared test Redis
    cfg = oc.settings(request, store_kind, clients=[{**CLIENT, "client_id": cid}],
                      rate_limits=LIMITS, trusted_proxies=["127.0.0.1/32"])
    async with running_app(cfg) as (client, _):
        honest = await tokens_for(client, cid)
        # the attack: 20 requests with junk tokens from 20 addresses
        for n in range(20):
            form = (refresh_form("junk-" + secrets.token_hex(8), cid) if endpoint == "/token"
                    else {"token": "junk", "client_id": cid})
            r = await client.post(endpoint, data=form,
                                  headers={"X-Forwarded-For": f"198.18.{n}.7"})
            assert r.status_code in (200, 400), r.text
        r = await client.post("/token", data=refresh_form(honest["refresh_token"], cid),
                              headers={"X-Forwarded-For": _ip()})
        assert r.status_code == 200, r.text
        # one source is still held to the client's rate
        src = {"X-Forwarded-For": _ip()}
        statuses = [
            (await client.post("/revoke", data={"token": "junk", "client_id": cid},
                               headers=src)).status_code
            for _ in range(5)
        ]
        assert statuses == [200, 200, 200, 429, 429], statuses


async def test_a_confidential_clients_budget_stays_one_bucket(
    store_kind: str, request: pytest.FixtureRequest
) -> None:
    cid = "vault-" + secrets.token_hex(4)  # buckets live in the shared test Redis
    cfg = oc.settings(request, store_kind, clients=[{**oc.VAULT, "client_id": cid}],
                      rate_limits=LIMITS, trusted_proxies=["127.0.0.1/32"])
    async with running_app(cfg) as (client, _):
        statuses = []
        for n in range(5):
            r = await client.post("/revoke", data={"token": "junk"},
                                  headers={**basic(cid, oc.SECRET),
                                           "X-Forwarded-For": f"198.18.{n}.8"})
            statuses.append(r.status_code)
        assert statuses == [200, 200, 200, 429, 429], statuses
