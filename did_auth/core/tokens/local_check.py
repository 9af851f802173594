"""Checking our own access tokens inside the server (introspection, revocation, OTP enrolment)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from did_auth_verifier.jose import JoseError, parse_compact, public_key_from_jwk

from did_auth.core.clock import Clock
from did_auth.core.ports import store_keys
from did_auth.core.ports.store import Store
from did_auth.core.tokens.cutoff import claims_covered, read_cutoff
from did_auth.core.tokens.keys import KeyRing
from did_auth.core.tokens.sessions import Session, SessionStore

__all__ = ["LocalTokenCheck", "SessionCheck", "deny_jti", "jti_key"]

_LEEWAY: Final = 30  # seconds of clock skew tolerated on exp, iat and nbf
_REQUIRED: Final = ("exp", "iat", "jti", "sub", "sid")


def _numeric_date(value: object) -> bool:
    # RFC 7519 §2 NumericDate: a JSON number (a bool is not one).
    return type(value) is int or type(value) is float


class SessionCheck(Protocol):
    """An extra verdict on a live session (the on-chain RevocationRegistry state,
    `did_auth.core.flows.registry_checks.RegistryGate`). May raise TemporarilyUnavailable."""

    async def session_allowed(self, session: Session) -> bool: ...


def jti_key(jti: str) -> str:
    return store_keys.denied_jti(jti)


async def deny_jti(store: Store, jti: str, exp: float, now: float) -> bool:
    """Deny one access token until it would have expired anyway; True when it was not
    denied yet (one atomic SET NX)."""
    return await store.put(jti_key(jti), b"1", max(1.0, exp - now + 60), nx=True)


@dataclass(eq=False)
class LocalTokenCheck:
    """Checks our own access tokens (signature, claims, denial, live session); `session_check`
    is the on-chain RevocationRegistry verdict on the token's session, when chains have one."""

    keys: KeyRing
    store: Store
    sessions: SessionStore
    clock: Clock
    issuer: str = field(kw_only=True)
    session_check: SessionCheck | None = field(default=None, kw_only=True)

    def signed_claims(self, token: str, *, verify_exp: bool = True) -> dict[str, Any] | None:
        """Claims of an access token we signed (typ at+jwt, our iss), else None."""
        try:
            jws = parse_compact(token)
        except JoseError:
            return None
        header, claims = jws.header, jws.claims
        # RFC 9068 §2.1: access tokens carry typ "at+jwt" (an ID token is not one).
        if header.get("typ") != "at+jwt":
            return None
        key = next((k for k in self.keys.published() if k.kid == header.get("kid")), None)
        # RFC 8725 §3.1: the key's own algorithm, never the one the header names.
        if key is None or header.get("alg") != key.alg:
            return None
        try:
            public = public_key_from_jwk(key.jwk, alg=key.alg, allowed_algs=(key.alg,))
        except JoseError:
            return None
        if not public.verify(jws.signing_input, jws.signature, canonical_only=True):
            return None
        if any(name not in claims for name in _REQUIRED) or claims.get("iss") != self.issuer:
            return None
        exp, iat, nbf = claims["exp"], claims["iat"], claims.get("nbf", 0)
        if not (_numeric_date(exp) and _numeric_date(iat) and _numeric_date(nbf)):
            return None
        now = self.clock.now()
        # RFC 7519 §4.1.4: "the current date/time MUST be before the expiration date/time".
        if verify_exp and exp <= now - _LEEWAY:
            return None
        # RFC 7519 §4.1.5: not before `nbf`; a token from the future is not ours to trust.
        if iat > now + _LEEWAY or nbf > now + _LEEWAY:
            return None
        return claims

    async def active_claims(self, token: str) -> dict[str, Any] | None:
        """Claims of a live token: signed by us, unexpired, session not revoked, jti not denied."""
        claims = self.signed_claims(token)
        if claims is None:
            return None
        if await self.store.get(jti_key(str(claims["jti"]))) is not None:
            return None
        # `did-auth sessions revoke-all`: auth_time (else iat) at or before the cut-off.
        if claims_covered(await read_cutoff(self.store), claims):
            return None
        session = await self.sessions.get(str(claims["sid"]))
        if session is None or session.revoked:
            return None
        # RevocationRegistry: suspended / revokeAll / revoked sid or key on chain
        # (fails closed: 503).
        if self.session_check is not None and not await self.session_check.session_allowed(
            session
        ):
            return None
        return claims
