"""The outstanding-nonce cap is checked before a nonce is stored: a request refused by the
cap (429) changes nothing in the store. Today's order (store the nonce, then count it)
leaves one live nonce key behind per refused request, so the cap never bounds storage.

Real Redis (its own database), /siwe/nonce (hot path and FastAPI route share the handler)
and /did/challenge."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
import redis.asyncio as aioredis

from did_auth.services import Services
from tests import siwe_text
from tests.fixtures.redis_server import RedisServer
from tests.fixtures.servers import config_dict, running_app, settings_for

CAP = 3


@pytest.fixture
async def capped(
    redis_server: RedisServer, session_kek: str
) -> AsyncIterator[tuple[httpx.AsyncClient, Services, aioredis.Redis]]:
    url = redis_server.url[:-1] + "7"  # a database of its own: every key here is ours
    raw = aioredis.from_url(url)
    await raw.flushdb()
    limits = {**config_dict()["rate_limits"], "outstanding_nonces_per_ip": CAP}
    settings = settings_for(redis_url=url, key_encryption_key_file=session_kek, rate_limits=limits)
    async with running_app(settings) as (client, svc):
        yield client, svc, raw
    await raw.flushdb()
    await raw.aclose()


async def _keys(raw: aioredis.Redis, pattern: str) -> set[bytes]:
    return {k async for k in raw.scan_iter(match=pattern)}


async def test_siwe_nonce_refused_at_cap_stores_nothing(
    capped: tuple[httpx.AsyncClient, Services, aioredis.Redis],
) -> None:
    client, _, raw = capped
    for _ in range(CAP):
        r = await client.post("/siwe/nonce", json={"client_id": "dapp"})
        assert r.status_code == 200, r.text
    before = await _keys(raw, "da:{n:*")
    assert len(before) == CAP
    everything = await _keys(raw, "*")
    for _ in range(3):
        r = await client.post("/siwe/nonce", json={"client_id": "dapp"})
        assert r.status_code == 429, r.text
        assert r.headers["retry-after"]
        assert "outstanding" in r.json()["error_description"]
    assert await _keys(raw, "da:{n:*") == before
    # Nothing but rate-limit counters may have changed: no nonce, no cap member.
    new = {k for k in await _keys(raw, "*") - everything if b"{n:" in k or b"{cap:" in k}
    assert new == set()


async def test_did_challenge_refused_at_cap_stores_nothing(
    capped: tuple[httpx.AsyncClient, Services, aioredis.Redis],
) -> None:
    client, _, raw = capped
    address, _ = siwe_text.new_account()
    body = {"client_id": "dapp", "did": f"did:pkh:eip155:31337:{address}"}
    for _ in range(CAP):
        r = await client.post("/did/challenge", json=body)
        assert r.status_code == 200, r.text
    before = await _keys(raw, "da:{c:*")
    assert len(before) == CAP
    for _ in range(3):
        r = await client.post("/did/challenge", json=body)
        assert r.status_code == 429, r.text
        assert "outstanding" in r.json()["error_description"]
    assert await _keys(raw, "da:{c:*") == before

