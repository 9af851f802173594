"""`POST /did/challenge` and `POST /did/verify` (the DID proof, docs/interface.md): read the
request, call the login use case (`did_auth.core.flows.login.Logins`), write the answer."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from did_auth.core.flows.login import DidProofLogin
from did_auth.edge.api.context import request_context
from did_auth.edge.api.deps import NO_STORE, ServicesDep, token_headers
from did_auth.edge.api.models import (
    DidChallengeRequest,
    DidChallengeResponse,
    DidVerifyRequest,
    TokenResponse,
    direct_login_fields,
)

__all__ = ["router"]

router = APIRouter()


@router.post("/did/challenge", response_model=DidChallengeResponse)
async def did_challenge(request: Request, body: DidChallengeRequest, svc: ServicesDep) -> Response:
    request.state.client_id = body.client_id
    result = await svc.login.did_challenge(
        body.client_id, body.did, body.audience, request_context(request)
    )
    return JSONResponse(result, headers=NO_STORE)


@router.post("/did/verify", response_model=TokenResponse)
async def did_verify(request: Request, body: DidVerifyRequest, svc: ServicesDep) -> Response:
    request.state.client_id = body.client_id
    result = await svc.login.did(
        DidProofLogin(
            proof=body.proof,
            **direct_login_fields(
                body,
                request.headers.getlist("dpop"),
                request.headers.get("authorization"),
                request_context(request),
            ),
        )
    )
    return JSONResponse(result.response, headers=token_headers(result))
