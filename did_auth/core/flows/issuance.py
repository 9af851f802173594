"""Turning a verified proof into a session, an access token and a refresh token."""

from __future__ import annotations

from typing import Any, Protocol

from did_auth.config.settings import Settings
from did_auth.core.flows.otp import OtpService
from did_auth.core.flows.proof_request import ProofRequest
from did_auth.core.flows.revocations import RevocationBook
from did_auth.core.policy.scopes import token_ttl
from did_auth.core.tokens.issue import Grant, TokenIssuer, new_sid
from did_auth.core.tokens.sessions import Session, SessionStore

__all__ = ["LoginIssuance", "issue_for_grant", "issue_for_proof", "token_response"]


def token_response(access: str, ttl: int, refresh: str, grant: Grant) -> dict[str, Any]:
    return {
        "access_token": access,
        "token_type": "DPoP" if grant.jkt else "Bearer",
        "expires_in": ttl,
        "refresh_token": refresh,
        "scope": grant.scope,
    }


async def issue_for_grant(
    settings: Settings,
    issuer: TokenIssuer,
    sessions: SessionStore,
    grant: Grant,
    revocations: RevocationBook | None = None,
) -> tuple[dict[str, Any], Session]:
    # The session keeps every field of its grant; the store sets its times.
    session, refresh = await sessions.create(Session(**vars(grant), created_at=0.0, expires_at=0.0))
    if revocations is not None:
        await revocations.index(session)
    access = issuer.issue(grant, token_ttl(settings, grant.scopes))
    return token_response(access.token, access.ttl, refresh, grant), session


class LoginIssuance(Protocol):
    """What turns a verified proof into tokens (`SiweLogin`, `DidLogin`)."""

    settings: Settings
    issuer: TokenIssuer
    sessions: SessionStore
    otp: OtpService
    revocations: RevocationBook | None


async def issue_for_proof(
    flow: LoginIssuance,
    req: ProofRequest,
    method: str,
    sub: str,
    client_id: str,
    audience: str,
    scopes: tuple[str, ...],
    auth_time: float,
    *,
    extra: dict[str, Any] | None = None,
    userinfo: bool = False,
) -> tuple[dict[str, Any], Grant]:
    """The step-up, the grant of a verified proof (`amr` [method] or [method, "otp"]; RFC
    8176) and its tokens. Call it after the proof and its nonce or challenge are checked and
    consumed: the second factor is checked only then, so every guess costs a fresh proof."""
    amr: tuple[str, ...] = (method,)
    if req.otp is not None:
        await flow.otp.verify(sub, req.otp)
        amr = (method, "otp")
    grant = Grant(
        sub=sub,
        client_id=client_id,
        audience=audience,
        scopes=scopes,
        auth_time=int(auth_time),
        amr=amr,
        sid=new_sid(),
        jkt=req.jkt,
        extra=extra or {},
        userinfo=userinfo,
    )
    response, _ = await issue_for_grant(
        flow.settings, flow.issuer, flow.sessions, grant, flow.revocations
    )
    return response, grant
