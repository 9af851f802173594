"""Operations: `GET /healthz` (the process answers), `GET /readyz` (its store and chains
answer) and `GET /metrics` (Prometheus exposition)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from did_auth.adapters.chain.client import ChainClient
from did_auth.adapters.monitoring.metrics import CONTENT_TYPE
from did_auth.core.errors import TemporarilyUnavailable
from did_auth.edge.api.deps import NO_STORE, ServicesDep
from did_auth.edge.api.metrics_listener import bearer_allows, exposition

__all__ = ["router"]

router = APIRouter()


@router.get("/metrics")
async def metrics(request: Request, svc: ServicesDep) -> Response:
    # Open only in development (metrics_public); else a bearer token (RFC 6750 §2.1)
    # or not here at all (metrics_listen: its own listener).
    allowed = bearer_allows(svc.settings, request.headers.get("authorization"))
    if allowed is None:
        raise StarletteHTTPException(404)
    if not allowed:
        return JSONResponse(
            {"error": "invalid_token", "error_description": "/metrics needs its bearer token"},
            status_code=401,
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"', **NO_STORE},
        )
    return Response(exposition(), media_type=CONTENT_TYPE)


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(svc: ServicesDep) -> Response:
    """Ready when Redis answers, the signing key can sign (with `[signing] backend =
    "pkcs11"`: the token answers and holds it) and every configured chain's RPC answers
    with a head block fresh enough (ChainConfig.max_head_age)."""
    report: dict[str, Any] = {}
    ready = True
    try:
        await svc.store.ping()
        report["store"] = "ok"
    except TemporarilyUnavailable:
        report["store"] = "down"
        ready = False
    try:
        svc.keys.check()  # the key that signs now can sign (a PKCS#11 token: it answers)
        report["signing"] = "ok"
    except TemporarilyUnavailable:
        report["signing"] = "down"
        ready = False
    chains: dict[str, str] = {}
    for chain_id, client in svc.chains.clients.items():
        chains[str(chain_id)] = await _chain_health(client, svc.clock.now())
        ready = ready and chains[str(chain_id)] == "ok"
    report["chains"] = chains
    report["status"] = "ready" if ready else "unavailable"
    return JSONResponse(report, status_code=200 if ready else 503, headers=NO_STORE)


async def _chain_health(client: ChainClient, now: float) -> str:
    max_age = client.config.max_head_age

    def latest(block: str) -> list[tuple[str, list[Any]]]:
        return [("eth_getBlockByNumber", [block, False])]

    try:
        (head,) = await client.read(latest)
    except TemporarilyUnavailable:
        return "down"
    if not isinstance(head, dict):
        return "down"
    if max_age is not None and now - int(head.get("timestamp", "0x0"), 16) > max_age:
        return "stale"
    return "ok"
