"""`POST /otp/enroll` and `POST /otp/confirm`: a second factor (RFC 6238 TOTP) for the
subject of the presented access token; enrolling or replacing one needs a fresh login, the
current factor, or a wallet signature (`did_auth.core.flows.otp_enrolment`). Always audited."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from did_auth.adapters.monitoring.audit import AuditEvent, Outcome
from did_auth.core.errors import (
    DidAuthError,
    InsufficientUserAuthentication,
    TemporarilyUnavailable,
)
from did_auth.core.flows.otp_enrolment import OtpEnrolRequest
from did_auth.edge.api.context import request_context
from did_auth.edge.api.deps import NO_STORE, ServicesDep
from did_auth.edge.api.models import OtpConfirmRequest, OtpEnrollRequest
from did_auth.edge.api.resource_auth import Audience, access_claims

__all__ = ["router"]

router = APIRouter()


@router.post("/otp/enroll")
async def otp_enroll(
    request: Request, svc: ServicesDep, body: OtpEnrollRequest | None = None
) -> Response:
    # RFC 9068 §4: only a token for did-auth itself (`aud` exactly the issuer): a token
    # an API received for its own audience cannot choose the user's second factor.
    claims = await access_claims(request, Audience.SOLE)
    ctx = request_context(request)
    body = body or OtpEnrollRequest()
    sub, client_id = str(claims["sub"]), str(claims.get("client_id", ""))
    request.state.client_id = client_id
    if svc.otp_enrolment is None:  # pragma: no cover - always wired by build_services
        raise TemporarilyUnavailable("OTP enrolment is not available", reason="otp_unwired")
    try:
        enrollment, method, replaces = await svc.otp_enrolment.enroll(
            OtpEnrolRequest(
                sub=sub,
                client_id=client_id,
                auth_time=float(claims.get("auth_time", 0)),
                sid=str(claims["sid"]),
                otp=body.otp,
                siwe=body.siwe.model_dump() if body.siwe is not None else None,
                webauthn=body.webauthn,
                ctx=ctx,
            )
        )
    except DidAuthError as exc:
        if isinstance(exc, InsufficientUserAuthentication) and (claims.get("cnf") or {}).get("jkt"):
            exc.scheme = "DPoP"  # RFC 9449 §7.1: the challenge of the scheme in use
        svc.audit.emit(
            AuditEvent.SECOND_FACTOR_ENROLMENT,
            Outcome.DENIED,
            reason=exc.reason,
            ctx=ctx,
            client_id=client_id,
            subject=sub,
            method="wallet_signature"
            if body.siwe is not None
            else ("current_otp" if body.otp is not None
                  else ("passkey" if body.webauthn is not None else "fresh_login")),
        )
        raise
    svc.audit.emit(
        AuditEvent.SECOND_FACTOR_ENROLMENT,
        Outcome.SUCCESS,
        reason=method,
        ctx=ctx,
        client_id=client_id,
        subject=sub,
        method=method,
        replaces=replaces,
    )
    return JSONResponse(
        {"secret": enrollment.secret, "otpauth_uri": enrollment.uri, "replaces": replaces},
        headers=NO_STORE,
    )


@router.post("/otp/confirm")
async def otp_confirm(request: Request, body: OtpConfirmRequest, svc: ServicesDep) -> Response:
    claims = await access_claims(request, Audience.SOLE)  # RFC 9068 §4, as above
    ctx = request_context(request)
    if svc.otp_enrolment is None:  # pragma: no cover - always wired by build_services
        raise TemporarilyUnavailable("OTP enrolment is not available", reason="otp_unwired")
    # Wrong codes count against the caller's session, not the account's step-up budget; the
    # enrolment's rule is applied again (its session, the account's factors now).
    confirmed = await svc.otp_enrolment.confirm(
        str(claims["sub"]), body.otp, sid=str(claims["sid"])
    )
    svc.audit.emit(
        AuditEvent.SECOND_FACTOR_ENROLLED,
        Outcome.SUCCESS,
        reason=confirmed.method,
        ctx=ctx,
        client_id=claims.get("client_id"),
        subject=str(claims["sub"]),
        replaced=confirmed.replaced,
    )
    return JSONResponse({"enrolled": True, "replaced": confirmed.replaced}, headers=NO_STORE)
