"""RFC 7662 token introspection.

The token endpoint's grants live in `did_auth.oauth.grants`, revocation in
`did_auth.oauth.revocation`, client and resource-server authentication in
`did_auth.oauth.client_auth`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from did_auth.oauth.client_auth import hash_secret
from did_auth.tokens.local_check import LocalTokenCheck
from did_auth.tokens.sessions import SessionStore

__all__ = ["TokenGrants", "hash_secret"]


@dataclass
class TokenGrants:
    sessions: SessionStore
    local: LocalTokenCheck

    async def introspect(self, token: str) -> dict[str, Any]:
        """RFC 7662 §2.2: `active` plus the token's claims; inactive tells nothing more."""
        claims = await self.local.active_claims(token)
        if claims is not None:
            out = {k: v for k, v in claims.items() if k != "cnf"}
            if "cnf" in claims:
                out["cnf"] = claims["cnf"]
            return {"active": True, "token_type": "access_token", **out}
        session = await self.sessions.current(token)
        if session is not None:
            return {
                "active": True,
                "token_type": "refresh_token",
                "client_id": session.client_id,
                "sub": session.sub,
                "scope": " ".join(session.scopes),
                "exp": int(session.refresh_expires_at),
                "sid": session.sid,
            }
        return {"active": False}
