"""Checking our own access tokens inside the server (introspection, revocation, OTP enrolment)."""

from __future__ import annotations

from typing import Any, Protocol

import jwt

from did_auth.clock import Clock
from did_auth.store.base import Store
from did_auth.tokens.keys import KeyRing
from did_auth.tokens.sessions import Session, SessionStore

__all__ = ["LocalTokenCheck", "SessionCheck", "deny_jti", "jti_key"]


class SessionCheck(Protocol):
    """An extra verdict on a live session (issue 6: the on-chain RevocationRegistry state,
    `did_auth.flows.registry_checks.RegistryGate`). May raise TemporarilyUnavailable."""

    async def session_allowed(self, session: Session) -> bool: ...


def jti_key(jti: str) -> str:
    return f"da:{{jti:{jti}}}"


async def deny_jti(store: Store, jti: str, exp: float, now: float) -> bool:
    """Deny one access token until it would have expired anyway; True when it was not
    denied yet (one atomic SET NX)."""
    return await store.put(jti_key(jti), b"1", max(1.0, exp - now + 60), nx=True)


class LocalTokenCheck:
    def __init__(
        self, keys: KeyRing, store: Store, sessions: SessionStore, clock: Clock, *, issuer: str
    ) -> None:
        self._keys = keys
        self._store = store
        self._sessions = sessions
        self._clock = clock
        self._issuer = issuer
        # Issue 6: set by build_services when chains have a RevocationRegistry.
        self.session_check: SessionCheck | None = None

    def signed_claims(self, token: str, *, verify_exp: bool = True) -> dict[str, Any] | None:
        """Claims of an access token we signed (typ at+jwt, our iss), else None."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            return None
        if header.get("typ") != "at+jwt":
            return None
        key = next((k for k in self._keys.published() if k.kid == header.get("kid")), None)
        if key is None:
            return None
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.private_key.public_key(),
                algorithms=[key.alg],
                issuer=self._issuer,
                leeway=30,
                options={
                    "verify_aud": False,
                    "verify_exp": verify_exp,
                    "require": ["exp", "iat", "jti", "sub", "sid"],
                },
            )
        except jwt.PyJWTError:
            return None
        return claims

    async def active_claims(self, token: str) -> dict[str, Any] | None:
        """Claims of a live token: signed by us, unexpired, session not revoked, jti not denied."""
        claims = self.signed_claims(token)
        if claims is None:
            return None
        if await self._store.get(jti_key(str(claims["jti"]))) is not None:
            return None
        session = await self._sessions.get(str(claims["sid"]))
        if session is None or session.revoked:
            return None
        # Issue 6: suspended / revokeAll / revoked sid or key on chain (fails closed: 503).
        if self.session_check is not None and not await self.session_check.session_allowed(
            session
        ):
            return None
        return claims
