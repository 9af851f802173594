"""`POST /siwe/nonce` and `POST /siwe/verify` (EIP-4361): read the request, call the login
use case (`did_auth.core.flows.login.Logins`), write the answer.

The two handlers are shared by the FastAPI routes and by the hot path
(`did_auth.edge.api.hotpath`), which serves the same two routes with less framework work.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from did_auth.core.flows.guard import RequestContext
from did_auth.core.flows.login import SiweProofLogin
from did_auth.edge.api.context import request_context
from did_auth.edge.api.deps import NO_STORE, ServicesDep, token_headers
from did_auth.edge.api.models import (
    NonceRequest,
    NonceResponse,
    SiweVerifyRequest,
    TokenResponse,
    direct_login_fields,
)
from did_auth.services import Services

__all__ = ["router", "siwe_nonce_handler", "siwe_verify_handler"]

router = APIRouter()


async def siwe_nonce_handler(
    svc: Services,
    ctx: RequestContext,
    body: NonceRequest,
    _dpop: list[str],
    _authorization: str | None,
) -> tuple[dict[str, Any], Mapping[str, str]]:
    return await svc.login.siwe_nonce(body.client_id, ctx), NO_STORE


async def siwe_verify_handler(
    svc: Services,
    ctx: RequestContext,
    body: SiweVerifyRequest,
    dpop: list[str],
    authorization: str | None,
) -> tuple[dict[str, Any], Mapping[str, str]]:
    result = await svc.login.siwe(
        SiweProofLogin(
            message=body.message,
            signature=body.signature,
            **direct_login_fields(body, dpop, authorization, ctx),
        )
    )
    return result.response, token_headers(result)


@router.post("/siwe/nonce", response_model=NonceResponse)
async def siwe_nonce(request: Request, body: NonceRequest, svc: ServicesDep) -> Response:
    request.state.client_id = body.client_id
    payload, headers = await siwe_nonce_handler(svc, request_context(request), body, [], None)
    return JSONResponse(payload, headers=headers)


@router.post("/siwe/verify", response_model=TokenResponse)
async def siwe_verify(request: Request, body: SiweVerifyRequest, svc: ServicesDep) -> Response:
    request.state.client_id = body.client_id
    payload, headers = await siwe_verify_handler(
        svc,
        request_context(request),
        body,
        request.headers.getlist("dpop"),
        request.headers.get("authorization"),
    )
    return JSONResponse(payload, headers=headers)
