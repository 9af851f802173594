"""`POST /transactions/nonce` and `POST /transactions/authorize`: withdrawals bound to what
the wallet signed (RFC 9396 `authorization_details` approved by an EIP-712 signature and a
second factor; the decisions are in `did_auth.core.flows.withdrawals`).

Both take the session's access token for did-auth itself, as `/userinfo` does (`aud`
contains the issuer; Bearer, or DPoP with its proof when bound). The body of
`/transactions/authorize` is read here as strict JSON (duplicate member names refused: a
value the client's parser and ours would read differently must never reach a signature
check) and checked strictly by the core. Every approval attempt is audited
(`withdrawal_approval`) and counted (`didauth_withdrawal_approvals_total`).
"""

from __future__ import annotations

from typing import Any

from did_auth_verifier.jose import JoseError, json_loads
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from did_auth.adapters.monitoring.audit import AuditEvent, Outcome
from did_auth.adapters.monitoring.metrics import METRICS
from did_auth.core.errors import DidAuthError, InvalidRequest
from did_auth.core.flows.withdrawals import FACTOR_MEMBERS
from did_auth.edge.api.context import request_context
from did_auth.edge.api.deps import NO_STORE, ServicesDep
from did_auth.edge.api.models import (
    NonceResponse,
    TransactionAuthorizeRequest,
    TransactionTokenResponse,
)
from did_auth.edge.api.resource_auth import Audience, access_claims

__all__ = ["router"]

router = APIRouter()

_AUTHORIZE_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": TransactionAuthorizeRequest.model_json_schema()}
        },
    }
}


# No input but the access token: an empty body (or `{}`), which is not read.
_NO_BODY: dict[str, Any] = {
    "requestBody": {
        "required": False,
        "content": {"application/json": {"schema": {"type": "object", "maxProperties": 0}}},
    }
}


@router.post("/transactions/nonce", response_model=NonceResponse, openapi_extra=_NO_BODY)
async def transaction_nonce(request: Request, svc: ServicesDep) -> Response:
    # RFC 9068 §4: a token for did-auth itself, as /userinfo takes it.
    claims = await access_claims(request, Audience.INCLUDES)
    request.state.client_id = claims.get("client_id")
    payload = await svc.transactions.nonce(claims, request_context(request))
    return JSONResponse(payload, headers=NO_STORE)


def _factor(body: object) -> str:
    if isinstance(body, dict):
        sent = [name for name in FACTOR_MEMBERS if body.get(name) is not None]
        if len(sent) == 1:
            return sent[0]
    return "none"


@router.post(
    "/transactions/authorize",
    response_model=TransactionTokenResponse,
    openapi_extra=_AUTHORIZE_BODY,
)
async def transaction_authorize(request: Request, svc: ServicesDep) -> Response:
    claims = await access_claims(request, Audience.INCLUDES)  # RFC 9068 §4, as above
    ctx = request_context(request)
    client_id = claims.get("client_id")
    request.state.client_id = client_id
    body: object = None
    try:
        try:
            body = json_loads(await request.body())
        except JoseError:
            raise InvalidRequest(
                "the body must be one JSON object (no duplicate member names)",
                reason="malformed_json",
            ) from None
        approved = await svc.transactions.authorize(claims, body, ctx)
    except DidAuthError as exc:
        METRICS.withdrawal_approvals.labels(outcome="failure", factor=_factor(body)).inc()
        svc.audit.emit(
            AuditEvent.WITHDRAWAL_APPROVAL,
            Outcome.DENIED,
            reason=exc.reason,
            ctx=ctx,
            client_id=client_id,
            subject=claims.get("sub"),
            sid=claims.get("sid"),
            factor=_factor(body),
            status=exc.status,
        )
        raise
    details = approved.details
    METRICS.withdrawal_approvals.labels(outcome="success", factor=approved.factor).inc()
    METRICS.tokens_issued.labels(grant="withdrawal").inc()
    svc.audit.emit(
        AuditEvent.WITHDRAWAL_APPROVAL,
        Outcome.SUCCESS,
        ctx=ctx,
        client_id=client_id,
        subject=approved.grant.sub,
        sid=approved.grant.sid,
        jti=approved.jti,
        factor=approved.factor,
        amr=list(approved.grant.amr),
        dpop_bound=approved.grant.jkt is not None,
        audience=details.audience,
        asset=details.asset,
        amount=details.amount,
        destination=details.destination,
        network=details.network,
    )
    return JSONResponse(approved.response, headers=NO_STORE)
