"""RFC 6749 §6 refresh grant and RFC 7009 revocation over the session store."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jwt

from did_auth.clock import Clock
from did_auth.errors import InvalidClient, InvalidRequest, InvalidScope
from did_auth.flows.issuance import token_response
from did_auth.policy.scopes import parse_scope, token_ttl
from did_auth.settings import Settings
from did_auth.tokens.issue import Grant, TokenIssuer
from did_auth.tokens.sessions import SessionStore, sid_of_refresh

__all__ = ["TokenGrants"]


@dataclass
class TokenGrants:
    settings: Settings
    clock: Clock
    issuer: TokenIssuer
    sessions: SessionStore

    async def refresh(
        self, *, client_id: str, refresh_token: str, scope: str | None, jkt: str | None = None
    ) -> dict[str, Any]:
        if self.settings.client(client_id) is None:
            raise InvalidClient("unknown client_id")
        requested = parse_scope(scope)
        sid = sid_of_refresh(refresh_token)
        current = await self.sessions.get(sid) if sid else None
        # RFC 6749 §6: the refresh token is bound to the client it was issued to.
        if current is not None and current.client_id != client_id:
            raise InvalidRequest("refresh token was issued to another client")
        # RFC 9449 §5: a DPoP-bound refresh token needs a proof with the same key.
        if current is not None and current.jkt and current.jkt != jkt:
            raise InvalidRequest("refresh token is DPoP-bound: send a DPoP proof of its key")
        # RFC 6749 §6: the new scope MUST NOT include any scope not originally granted.
        if requested is not None and current is not None:
            extra = set(requested) - set(current.scopes)
            if extra:
                raise InvalidScope("refresh may only narrow the scope")
        session, new_refresh = await self.sessions.rotate(refresh_token)
        scopes = requested or session.scopes
        grant = Grant(
            sub=session.sub,
            client_id=session.client_id,
            audience=session.audience,
            scopes=tuple(scopes),
            auth_time=session.auth_time,
            amr=session.amr,
            sid=session.sid,
            jkt=session.jkt,
            extra=session.extra,
        )
        access = self.issuer.issue(grant, token_ttl(self.settings, grant.scopes))
        return token_response(access.token, access.ttl, new_refresh, grant)

    async def revoke(self, token: str) -> None:
        """RFC 7009 §2.2: respond 200 whether or not the token was valid."""
        sid = sid_of_refresh(token)
        if sid is None:
            # Only our own (signature-checked) access tokens carry a sid we act on.
            claims = self._verify_access(token) or {}
            sid = claims.get("sid") if isinstance(claims.get("sid"), str) else None
        if sid:
            await self.sessions.revoke(sid)

    def _verify_access(self, token: str) -> dict[str, Any] | None:
        keys = {k.kid: k for k in self.issuer.keys.published()}
        try:
            kid = jwt.get_unverified_header(token).get("kid")
            key = keys.get(kid) if isinstance(kid, str) else None
            if key is None:
                return None
            claims: dict[str, Any] = jwt.decode(
                token,
                key.private_key.public_key(),
                algorithms=[key.alg],
                issuer=self.settings.issuer,
                options={"verify_aud": False, "verify_exp": False},
            )
            return claims
        except jwt.PyJWTError:
            return None
