"""Development only: `POST /dev/rpc`, the embedded chain as a JSON-RPC endpoint, and
`GET /dev/rpc`, its chain id and contract addresses. Mounted only on the embedded defaults
(no config file: `dev_rpc`, the memory store and an embedded chain).

Not reachable from other sites' pages (`DevRpcSameOrigin`, `POST`'s content type): a page a
developer opens could otherwise send transactions to it as a CORS "simple request" (a
`text/plain` body needs no preflight, and the page needs no answer to act). So `POST` takes
only `Content-Type: application/json` (Fetch: not a CORS-safelisted request-header value,
so a browser must preflight it cross-site), preflights (`OPTIONS`) are never answered, and
a request whose `Origin` is not the server's own is refused (403)."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from did_auth.adapters.chain.dev_rpc import DevRpc
from did_auth.core.errors import (
    AccessDenied,
    DidAuthError,
    InvalidRequest,
    TemporarilyUnavailable,
    UnsupportedMediaType,
)
from did_auth.edge.api.deps import ServicesDep

__all__ = ["PATH", "DevRpcSameOrigin", "router"]

PATH = "/dev/rpc"


class DevRpcSameOrigin:
    """ASGI middleware, outside CORS: on `/dev/rpc` no preflight is answered (403), a `POST`
    that is not `application/json` is refused (415) and so is a request whose `Origin` is
    not the server's own (scheme://host of the request; 403), in the documented error
    format, before the CORS middleware or the chain see it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == PATH:
            headers = Headers(scope=scope)
            origin = headers.get("origin")
            own = f"{scope.get('scheme', 'http')}://{headers.get('host', '')}"
            refusal: DidAuthError | None = None
            # Exactly application/json (its parameters, e.g. charset, aside): text/plain, a
            # form or multipart body is what a cross-site page sends without a preflight.
            media_type = headers.get("content-type", "").split(";", 1)[0].strip().lower()
            if scope["method"] == "OPTIONS":
                refusal = AccessDenied("/dev/rpc answers no CORS preflight", reason="dev_rpc")
            elif scope["method"] == "POST" and media_type != "application/json":
                refusal = UnsupportedMediaType(
                    "/dev/rpc takes only Content-Type: application/json", reason="content_type"
                )
            elif origin is not None and origin != own:
                refusal = AccessDenied(
                    "/dev/rpc takes requests from the server's own origin only",
                    reason="dev_rpc",
                )
            if refusal is not None:
                reply = JSONResponse(refusal.to_dict(), status_code=refusal.status)
                await reply(scope, receive, send)
                return
        await self.app(scope, receive, send)

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


@router.get(PATH)
async def dev_rpc_info(request: Request, svc: ServicesDep) -> dict[str, Any]:
    return _dev_rpc(request, svc).info()


@router.post(PATH)
async def dev_rpc(request: Request, svc: ServicesDep) -> JSONResponse:
    # Content-Type and Origin are checked before this (DevRpcSameOrigin).
    try:
        payload = json.loads(await request.body())
    except ValueError:
        raise InvalidRequest("the body is not JSON (a JSON-RPC 2.0 request)") from None
    return JSONResponse(await _dev_rpc(request, svc).handle(payload))
