"""Development only: `POST /dev/rpc`, the embedded chain as a JSON-RPC endpoint, and
`GET /dev/rpc`, its chain id and contract addresses. Mounted only on the embedded defaults
(no config file: `dev_rpc`, the memory store and an embedded chain)."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from did_auth.api.deps import ServicesDep
from did_auth.chain.dev_rpc import DevRpc
from did_auth.errors import InvalidRequest, TemporarilyUnavailable

__all__ = ["router"]

router = APIRouter(include_in_schema=False)


def _dev_rpc(request: Request, svc: ServicesDep) -> DevRpc:
    rpc: DevRpc | None = getattr(request.app.state, "dev_rpc", None)
    if rpc is None:
        chain = next(
            (c.embedded for c in svc.chains.clients.values() if c.embedded is not None), None
        )
        if chain is None:
            raise TemporarilyUnavailable("the embedded chain is not started", reason="chain")
        rpc = request.app.state.dev_rpc = DevRpc(chain)
    return rpc


@router.get("/dev/rpc")
async def dev_rpc_info(request: Request, svc: ServicesDep) -> dict[str, Any]:
    return _dev_rpc(request, svc).info()


@router.post("/dev/rpc")
async def dev_rpc(request: Request, svc: ServicesDep) -> JSONResponse:
    try:
        payload = json.loads(await request.body())
    except ValueError:
        raise InvalidRequest("the body is not JSON (a JSON-RPC 2.0 request)") from None
    return JSONResponse(await _dev_rpc(request, svc).handle(payload))
