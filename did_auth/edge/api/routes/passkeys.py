"""Passkeys (WebAuthn Level 2) of the access token's account: register, list, remove, and
the options of an assertion that serves as the second factor of one transaction. The
decisions are in `did_auth.core.flows.passkeys`; these handlers read the token (did-auth's own
resource: `aud` exactly the issuer, as `/otp/*`) and translate. Registration and removal
are audited."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from did_auth.adapters.monitoring.audit import AuditEvent, Outcome
from did_auth.core.errors import DidAuthError, InsufficientUserAuthentication
from did_auth.core.flows.guard import RequestContext
from did_auth.edge.api.context import request_context
from did_auth.edge.api.deps import NO_STORE, ServicesDep
from did_auth.edge.api.resource_auth import Audience, access_claims
from did_auth.services import Services

__all__ = ["router"]

router = APIRouter()


class _Body(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")


class PasskeyRegisterRequest(_Body):
    """The PublicKeyCredential `navigator.credentials.create()` returned (JSON, base64url
    members), and an optional label."""

    credential: dict[str, Any]
    name: str | None = Field(default=None, max_length=64)


class PasskeyRegisterOptionsRequest(_Body):
    """`{}` for the first factor; with a factor enrolled, one of them: `webauthn` (an
    assertion of a passkey for binding `urn:did-auth:second-factor:add`) or `otp`."""

    otp: str | None = Field(default=None, max_length=16)
    webauthn: dict[str, Any] | None = None


class PasskeyAssertOptionsRequest(_Body):
    """What the assertion will approve: the transaction nonce of `/transactions/nonce`."""

    binding: str = Field(min_length=1, max_length=512)


def _fresh_challenge(exc: DidAuthError, claims: dict[str, Any]) -> None:
    if isinstance(exc, InsufficientUserAuthentication) and (claims.get("cnf") or {}).get("jkt"):
        exc.scheme = "DPoP"  # RFC 9449 §7.1: the challenge of the scheme in use


@dataclass(frozen=True)
class _FactorChange:
    """A registration or removal of a passkey: its caller (did-auth's own token) and its
    audit event, recorded as denied (with the error's reason) or as a success."""

    svc: Services
    event: AuditEvent
    claims: dict[str, Any]
    ctx: RequestContext
    sub: str
    client_id: str

    @property
    def auth_time(self) -> float:
        return float(self.claims.get("auth_time", 0))

    def emit(self, outcome: Outcome, reason: str | None = "fresh_login", **extra: Any) -> None:
        self.svc.audit.emit(self.event, outcome, reason=reason, ctx=self.ctx,
                            client_id=self.client_id, subject=self.sub, **extra)

    @contextmanager
    def denial_audited(self) -> Iterator[None]:
        try:
            yield
        except DidAuthError as exc:
            _fresh_challenge(exc, self.claims)
            self.emit(Outcome.DENIED, reason=exc.reason)
            raise


async def _factor_change(request: Request, svc: Services, event: AuditEvent) -> _FactorChange:
    claims = await access_claims(request, Audience.SOLE)
    sub, client_id = str(claims["sub"]), str(claims.get("client_id", ""))
    request.state.client_id = client_id
    return _FactorChange(svc, event, claims, request_context(request), sub, client_id)


@router.post("/passkeys/register/options")
async def passkey_register_options(
    request: Request, svc: ServicesDep, body: PasskeyRegisterOptionsRequest | None = None
) -> Response:
    # RFC 9068 §4: only a token for did-auth itself can choose the account's factors.
    claims = await access_claims(request, Audience.SOLE)
    request.state.client_id = str(claims.get("client_id", ""))
    body = body or PasskeyRegisterOptionsRequest()
    try:
        options = await svc.passkeys.registration_options(
            str(claims["sub"]), auth_time=float(claims.get("auth_time", 0)),
            sid=str(claims.get("sid", "")), otp=body.otp, webauthn=body.webauthn,
        )
    except DidAuthError as exc:
        _fresh_challenge(exc, claims)
        raise
    return JSONResponse(options, headers=NO_STORE)


@router.post("/passkeys/register")
async def passkey_register(
    request: Request, body: PasskeyRegisterRequest, svc: ServicesDep
) -> Response:
    change = await _factor_change(request, svc, AuditEvent.PASSKEY_REGISTRATION)
    with change.denial_audited():
        passkey = await svc.passkeys.register(
            change.sub, body.credential, auth_time=change.auth_time, name=body.name
        )
    change.emit(Outcome.SUCCESS, credential_id=passkey["id"], amr=passkey["amr"])
    return JSONResponse(passkey, status_code=201, headers=NO_STORE)


@router.get("/passkeys")
async def passkey_list(request: Request, svc: ServicesDep) -> Response:
    claims = await access_claims(request, Audience.SOLE)
    request.state.client_id = str(claims.get("client_id", ""))
    passkeys = await svc.passkeys.registered(str(claims["sub"]))
    return JSONResponse({"passkeys": passkeys}, headers=NO_STORE)


@router.delete("/passkeys/{credential_id}")
async def passkey_remove(request: Request, credential_id: str, svc: ServicesDep) -> Response:
    change = await _factor_change(request, svc, AuditEvent.PASSKEY_REMOVAL)
    with change.denial_audited():
        await svc.passkeys.remove(change.sub, credential_id[:512], auth_time=change.auth_time)
    change.emit(Outcome.SUCCESS, credential_id=credential_id)
    return Response(status_code=204, headers=NO_STORE)


@router.post("/passkeys/assert/options")
async def passkey_assert_options(
    request: Request, body: PasskeyAssertOptionsRequest, svc: ServicesDep
) -> Response:
    # As /transactions/*: a token whose `aud` contains the issuer (the options only name
    # the account's credentials and draw a challenge bound to the transaction nonce).
    claims = await access_claims(request, Audience.INCLUDES)
    request.state.client_id = str(claims.get("client_id", ""))
    options = await svc.passkeys.assertion_options(str(claims["sub"]), binding=body.binding)
    return JSONResponse(options, headers=NO_STORE)
