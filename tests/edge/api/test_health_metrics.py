"""/healthz, /readyz (store and chains) and /metrics."""

from __future__ import annotations

import time

from did_auth.core.clock import FixedClock
from tests.edge.api.test_siwe_flow import login
from tests.fixtures.redis_server import free_port
from tests.fixtures.servers import running_app, settings_for


async def test_ready_with_embedded_chain_and_store() -> None:
    async with running_app(settings_for(chains=[{"chain_id": 31337, "rpc_url": "embedded"}])) as (c, _):
        assert (await c.get("/healthz")).json() == {"status": "ok"}
        r = await c.get("/readyz")
        assert r.status_code == 200, r.text
        assert r.json()["store"] == "ok" and r.json()["chains"] == {"31337": "ok"}


async def test_rpc_calls_are_counted_per_chain_and_outcome() -> None:
    cfg = settings_for(chains=[
        {"chain_id": 31337, "rpc_url": f"http://127.0.0.1:{free_port()}", "rpc_timeout": 1},
        {"chain_id": 1337, "rpc_url": "embedded", "revocation_registry_for": [31337]},
    ], metrics_public=True)
    async with running_app(cfg) as (c, _):
        await c.get("/readyz")
        text = (await c.get("/metrics")).text
        assert 'didauth_rpc_calls_total{chain="31337",outcome="error"}' in text
        assert 'didauth_rpc_calls_total{chain="1337",outcome="ok"}' in text


async def test_not_ready_when_a_chain_is_down_or_stale() -> None:
    cfg = settings_for(chains=[
        {"chain_id": 31337, "rpc_url": f"http://127.0.0.1:{free_port()}", "rpc_timeout": 1},
        {"chain_id": 1337, "rpc_url": "embedded", "max_head_age": 60,
         "revocation_registry_for": [31337]},
    ])
    # an hour after the embedded chain's last block: its head is stale
    async with running_app(cfg, clock=FixedClock(time.time() + 3600)) as (c, _):
        r = await c.get("/readyz")
        assert r.status_code == 503
        assert r.json()["chains"] == {"31337": "down", "1337": "stale"}
        assert (await c.get("/healthz")).status_code == 200


async def test_metrics_count_logins_and_requests() -> None:
    async with running_app(settings_for(metrics_public=True)) as (c, _):
        assert (await login(c)).status_code == 200
        await c.post("/siwe/verify", json={"client_id": "dapp", "message": "x", "signature": "0x00"})
        text = (await c.get("/metrics")).text
        assert "# TYPE didauth_http_requests_total counter" in text
        assert 'didauth_logins_total{method="siwe",outcome="success"}' in text
        assert 'route="/siwe/verify"' in text and "didauth_http_request_duration_seconds_bucket" in text
