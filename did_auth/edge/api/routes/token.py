"""The client-authenticated OAuth endpoints: `POST /token` (RFC 6749 §3.2), `POST /revoke`
(RFC 7009), `POST /introspect` (RFC 7662). Each reads the form and the headers; the
endpoint objects of `did_auth.core.oauth` decide."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from did_auth.edge.api.context import request_context
from did_auth.edge.api.deps import NO_STORE, ServicesDep
from did_auth.edge.api.forms import read_form
from did_auth.edge.api.models import TokenResponse

__all__ = ["router"]

router = APIRouter()


@router.post("/token", response_model=TokenResponse)
async def token(request: Request, svc: ServicesDep) -> Response:
    """RFC 6749 §3.2: did_auth.core.oauth.token_endpoint decides; this reads and writes."""
    form = await read_form(request)
    request.state.grant_type = form.get("grant_type")
    request.state.client_id = form.get("client_id")
    result = await svc.token_endpoint.handle(
        authorization=request.headers.get("authorization"),
        params=form,
        dpop_proofs=request.headers.getlist("dpop"),
        ctx=request_context(request),
    )
    request.state.client_id = result.client.client_id
    headers = NO_STORE
    if svc.settings.dpop_nonce:  # RFC 9449 §8: the nonce for the client's next proof
        headers = {**NO_STORE, "DPoP-Nonce": svc.dpop.new_nonce()}
    return JSONResponse(result.response, headers=headers)


@router.post("/revoke")
async def revoke(request: Request, svc: ServicesDep) -> Response:
    """RFC 7009: did_auth.core.oauth.revocation decides; 200 with an empty body (§2.2)."""
    form = await read_form(request)
    request.state.client_id = form.get("client_id")
    await svc.revocation.handle(
        authorization=request.headers.get("authorization"),
        params=form,
        ctx=request_context(request),
    )
    return Response(status_code=200, headers=NO_STORE)


@router.post("/introspect")
async def introspect(request: Request, svc: ServicesDep) -> Response:
    """RFC 7662 (did_auth.core.oauth.introspection): the caller authenticates like a client."""
    result = await svc.introspection.handle(
        authorization=request.headers.get("authorization"),
        params=await read_form(request),
        ctx=request_context(request),
    )
    return JSONResponse(result, headers=NO_STORE)
