"""A crafted EIP-6492 signature (its "factory" the BN254 pairing precompile) makes the
embedded EVM work for the whole `verify_timeout`. Such work is only done for a message
whose nonce this server issued to this client and that is still unused (a cheap read
before any chain work; the atomic consume stays last); one client IP has at most
`contract_checks_in_flight_per_ip` (default 1) contract-signature checks running on the
embedded chain, more are refused at once with 429 slow_down and Retry-After instead of
queueing; and a check that waited for the busy EVM past its budget is 429 slow_down
(`rpc_busy`), not a 503."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from did_auth.core.flows.nonces import new_nonce
from did_auth.services import Services
from tests import siwe_text
from tests.adapters.chain.wallets import address_of, new_key
from tests.fixtures.servers import running_app, settings_for
from tests.security.test_chain_call_caps import crafted_6492

Api = tuple[httpx.AsyncClient, Services]


@pytest.fixture
async def app() -> AsyncIterator[Api]:
    settings = settings_for(
        chains=[{"chain_id": 31337, "rpc_url": "embedded"}],
        trusted_proxies=["127.0.0.1/32"],
    )
    async with running_app(settings) as pair:
        yield pair


async def _nonce(client: httpx.AsyncClient, ip: str = "198.51.100.1") -> str:
    r = await client.post("/siwe/nonce", json={"client_id": "dapp"},
                          headers={"X-Forwarded-For": ip})
    assert r.status_code == 200, r.text
    return str(r.json()["nonce"])


async def _crafted_login(
    client: httpx.AsyncClient, nonce: str, ip: str = "198.51.100.1"
) -> tuple[httpx.Response, float]:
    text = siwe_text.message(address_of(new_key()), nonce)
    started = time.monotonic()
    r = await client.post(
        "/siwe/verify",
        json={"client_id": "dapp", "message": text, "signature": crafted_6492()},
        headers={"X-Forwarded-For": ip},
        timeout=60,
    )
    return r, time.monotonic() - started


def _evm_jobs(svc: Services) -> Any:
    client = svc.chains.require(31337)
    assert client.embedded is not None
    return client.embedded.worker


async def test_never_issued_nonce_is_refused_before_any_evm_work(app: Api) -> None:
    client, svc = app
    await _crafted_login(client, await _nonce(client))  # warm up (imports, code paths)
    worker = _evm_jobs(svc)
    calls: list[object] = []
    run = worker.run

    async def spy(fn: Any, **kw: Any) -> Any:
        calls.append(fn)
        return await run(fn, **kw)

    worker.run = spy
    try:
        for _ in range(5):
            r, took = await _crafted_login(client, new_nonce())
            assert r.status_code == 400, r.text
            assert r.json()["error"] == "invalid_grant"
            assert "nonce" in r.json()["error_description"], r.text
            assert took < 0.1, took
        assert calls == [], "the EVM worker ran for a nonce this server did not hand out"
        # a nonce that was issued and used is refused the same way
        key = new_key()
        text = siwe_text.message(address_of(key), await _nonce(client))
        ok = await client.post("/siwe/verify", json={
            "client_id": "dapp", "message": text, "signature": siwe_text.sign(text, key)},
            headers={"X-Forwarded-For": "198.51.100.1"})
        assert ok.status_code == 200, ok.text
        calls.clear()
        started = time.monotonic()
        replay = await client.post("/siwe/verify", json={
            "client_id": "dapp", "message": text, "signature": crafted_6492()},
            headers={"X-Forwarded-For": "198.51.100.1"})
        assert time.monotonic() - started < 0.1
        assert replay.status_code == 400 and "used" in replay.json()["error_description"]
        assert calls == [], "the EVM worker ran for a used nonce"
    finally:
        worker.run = run


async def test_concurrent_crafted_checks_from_one_ip_do_not_queue(app: Api) -> None:
    client, _ = app
    nonces = [await _nonce(client) for _ in range(4)]
    started = time.monotonic()
    results = await asyncio.gather(*(_crafted_login(client, n) for n in nonces))
    total = time.monotonic() - started
    statuses = sorted(r.status_code for r, _ in results)
    assert statuses == [400, 429, 429, 429], [(r.status_code, r.text) for r, _ in results]
    for r, took in results:
        if r.status_code == 429:
            assert r.json()["error"] == "slow_down"
            assert int(r.headers["Retry-After"]) >= 1
            assert took < 0.5, took  # refused at once, not queued behind the running check
    assert total < 2 + 1.5, total  # one 2 s check, not four in a row
    # the refused requests did not burn their nonces: once the first check is over, the
    # same IP may try again
    r, _ = await _crafted_login(client, nonces[1])
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant", r.text


async def test_a_check_that_waited_past_its_budget_is_429_not_503(app: Api) -> None:
    client, _ = app
    ips = [f"198.51.100.{i}" for i in range(10, 13)]
    nonces = [await _nonce(client, ip) for ip in ips]
    results = await asyncio.gather(*(_crafted_login(client, n, ip)
                                     for n, ip in zip(nonces, ips, strict=True)))
    statuses = [r.status_code for r, _ in results]
    assert 503 not in statuses, [r.text for r, _ in results]
    busy = [r for r, _ in results if r.status_code == 429]
    assert busy, [r.text for r, _ in results]
    for r in busy:
        assert r.json()["error"] == "slow_down" and int(r.headers["Retry-After"]) >= 1
