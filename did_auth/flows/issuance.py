"""Turning a verified proof into a session, an access token and a refresh token."""

from __future__ import annotations

from typing import Any

from did_auth.flows.revocations import RevocationBook
from did_auth.policy.scopes import token_ttl
from did_auth.settings import Settings
from did_auth.tokens.issue import Grant, TokenIssuer
from did_auth.tokens.sessions import Session, SessionStore

__all__ = ["issue_for_grant", "token_response"]


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
