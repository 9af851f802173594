"""RFC 6749 §6 refresh grant, RFC 7009 revocation and RFC 7662 introspection."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from did_auth.clock import Clock
from did_auth.errors import InvalidClient, InvalidDpopProof, InvalidRequest, InvalidScope
from did_auth.flows.dpop_gate import DpopGate
from did_auth.flows.issuance import token_response
from did_auth.flows.registry_checks import RegistryGate
from did_auth.flows.revocations import RevocationBook
from did_auth.policy.scopes import parse_scope, token_ttl
from did_auth.settings import ResourceServerConfig, Settings
from did_auth.store.base import Store
from did_auth.tokens.issue import Grant, TokenIssuer
from did_auth.tokens.local_check import LocalTokenCheck
from did_auth.tokens.sessions import SessionStore, sid_of_refresh

__all__ = ["TokenGrants", "hash_secret"]


def hash_secret(secret: str) -> str:
    """The `secret_hash` form of a resource-server secret (`sha256:<hex>`)."""
    return "sha256:" + hashlib.sha256(secret.encode()).hexdigest()


@dataclass
class TokenGrants:
    settings: Settings
    clock: Clock
    issuer: TokenIssuer
    sessions: SessionStore
    store: Store
    local: LocalTokenCheck
    dpop: DpopGate
    revocations: RevocationBook
    registry: RegistryGate | None = None  # issue 6: on-chain RevocationRegistry checks
    # issue 4: a DID session refreshes only while its key still authenticates the DID
    did_recheck: Callable[[str, object], Awaitable[None]] | None = None

    async def refresh(
        self,
        *,
        client_id: str,
        refresh_token: str,
        scope: str | None,
        dpop_proofs: list[str],
        htu: str,
    ) -> dict[str, Any]:
        client = self.settings.client(client_id)
        if client is None:
            raise InvalidClient("unknown client_id")
        requested = parse_scope(scope)
        sid = sid_of_refresh(refresh_token)
        current = await self.sessions.get(sid) if sid else None
        # RFC 6749 §6: the refresh token is bound to the client it was issued to.
        if current is not None and current.client_id != client_id:
            raise InvalidRequest("refresh token was issued to another client")
        # RFC 9449 §5: a refresh token issued to a DPoP client is bound to its key; the
        # request MUST carry a proof made with that same key.
        bound = current.jkt if current is not None else None
        jkt = await self.dpop.check(
            dpop_proofs, htm="POST", htu=htu, required=client.require_dpop, bound_jkt=bound
        )
        if bound is None and jkt is not None and current is not None:
            raise InvalidDpopProof("this refresh token is not DPoP-bound", reason="dpop_unbound")
        # RFC 6749 §6: the new scope MUST NOT include any scope not originally granted.
        # All checks run before the rotation so a refused request changes no state.
        scopes: tuple[str, ...] | None = None
        if current is not None:
            if requested is not None and set(requested) - set(current.scopes):
                raise InvalidScope("refresh may only narrow the scope")
            scopes = self._fresh_enough(
                current.scopes if requested is None else requested,
                current.auth_time,
                explicit=requested is not None,
            )
        # Issue 6: the RevocationRegistry of the subject's chain (did:pkh chain id, did:ethr
        # network): suspended, revokeAll after auth_time, revoked sid or key -> refused (and
        # the session revoked); chain down -> 503.
        if current is not None and not current.revoked and self.registry is not None:
            await self.registry.check_session(current)
        if (
            current is not None
            and not current.revoked
            and self.did_recheck is not None
            and current.sub.startswith("did:")
            and not current.sub.startswith("did:pkh:")
        ):
            await self.did_recheck(current.sub, current.extra.get("auth_key"))
        session, new_refresh = await self.sessions.rotate(refresh_token)
        if scopes is None:  # pragma: no cover - rotate() refuses unknown sessions
            raise InvalidScope("unknown session")
        grant = Grant(
            sub=session.sub,
            client_id=session.client_id,
            audience=session.audience,
            scopes=scopes,
            auth_time=session.auth_time,
            amr=session.amr,
            sid=session.sid,
            jkt=session.jkt,
            extra=session.extra,
        )
        access = self.issuer.issue(grant, token_ttl(self.settings, grant.scopes))
        return token_response(access.token, access.ttl, new_refresh, grant)

    def _fresh_enough(
        self, scopes: tuple[str, ...], auth_time: int, *, explicit: bool
    ) -> tuple[str, ...]:
        """Step-up scopes survive a refresh only while the login is fresh (auth_time)."""
        stale = self.clock.now() - auth_time > self.settings.step_up_max_age
        step_up = [s for s in scopes if self.settings.scope_config(s).step_up]
        if not (stale and step_up):
            return scopes
        if explicit:
            raise InvalidScope(
                f"scope {' '.join(step_up)} needs a fresh login with a second factor",
                reason="step_up_required",
            )
        kept = tuple(s for s in scopes if s not in step_up)
        if not kept:
            raise InvalidScope("no scope left after dropping stale step-up scopes")
        return kept

    async def revoke(self, token: str) -> str | None:
        """RFC 7009 §2.2: the caller answers 200 whether or not the token was valid.

        Revoking either token of a session revokes the whole session (refresh family); an
        access token's `jti` is also denied until it expires. Returns the sid revoked.
        """
        sid = sid_of_refresh(token)
        if sid is None:
            claims = self.local.signed_claims(token, verify_exp=False)
            if claims is None:
                return None
            await self.revocations.revoke_jti(
                str(claims["jti"]), float(claims["exp"]), reason="rfc7009"
            )
            sid = str(claims["sid"])
        elif await self.sessions.current(token) is None:
            return None  # not a live refresh token: nothing to act on (no oracle either)
        await self.revocations.revoke_sid(sid, reason="rfc7009")
        return sid

    def authenticate_resource_server(self, name: str, secret: str) -> ResourceServerConfig:
        for rs in self.settings.resource_servers:
            if rs.name == name and _secret_matches(secret, rs.secret_hash):
                return rs
        raise InvalidClient("resource server authentication failed")

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


def _secret_matches(secret: str, stored: str) -> bool:
    if not stored.startswith("sha256:"):
        return False
    return hmac.compare_digest(hash_secret(secret), stored)
