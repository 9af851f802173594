"""RFC 6749 §6: `grant_type=refresh_token` (rotation, reuse detection, scope narrowing,
step-up freshness, on-chain registry and DID re-checks, DPoP binding)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from did_auth.config.settings import Settings
from did_auth.core.clock import Clock
from did_auth.core.errors import AccessDenied, InvalidDpopProof, InvalidGrant, InvalidScope
from did_auth.core.flows.dpop_gate import DpopGate
from did_auth.core.flows.issuance import token_response
from did_auth.core.flows.registry_checks import RegistryGate
from did_auth.core.flows.revocations import RevocationBook
from did_auth.core.oauth.grants.base import TokenRequest
from did_auth.core.policy.scopes import parse_scope, token_ttl
from did_auth.core.tokens.cutoff import read_cutoff, revoked_before_covers
from did_auth.core.tokens.issue import TokenIssuer
from did_auth.core.tokens.sessions import SessionStore, session_grant, sid_of_refresh

__all__ = ["RefreshTokenGrant"]


@dataclass
class RefreshTokenGrant:
    settings: Settings
    clock: Clock
    issuer: TokenIssuer
    sessions: SessionStore
    dpop: DpopGate
    # Revokes (and announces on the feed) the session of a reused refresh token or of a
    # DID whose key no longer authenticates it.
    revocations: RevocationBook
    registry: RegistryGate | None = None  # on-chain RevocationRegistry checks
    # A DID session refreshes only while its key still authenticates the DID.
    did_recheck: Callable[[str, object], Awaitable[None]] | None = None
    grant_type: str = "refresh_token"

    async def exchange(self, request: TokenRequest) -> dict[str, Any]:
        client = request.client.config
        refresh_token = request.required("refresh_token")
        requested = parse_scope(request.params.get("scope"))
        if requested is not None and "openid" in requested:
            # OIDC Core §12.1: an RP may repeat the scope of its authorization request on a
            # refresh; `openid` marks the OpenID request and is no did-auth scope, so it
            # is not compared with the session's scopes (authlib sends it by default).
            requested = tuple(s for s in requested if s != "openid") or None
        sid = sid_of_refresh(refresh_token)
        current = await self.sessions.get(sid) if sid else None
        # RFC 6749 §6: the server MUST "ensure that the refresh token was issued to the
        # authenticated client" (§5.2 invalid_grant: "issued to another client").
        if current is not None and current.client_id != client.client_id:
            raise InvalidGrant(
                "refresh token was issued to another client", reason="client_mismatch"
            )
        # `did-auth sessions revoke-all`: a session authenticated at or before the global
        # cut-off is over (RFC 6749 §5.2 invalid_grant: the refresh token "is ... revoked").
        if current is not None and revoked_before_covers(
            await read_cutoff(self.revocations.store), current.auth_time
        ):
            raise InvalidGrant("the session was revoked", reason="session_revoked_all")
        # RFC 9449 §5: a refresh token issued to a DPoP client is bound to its key; the
        # request MUST carry a proof made with that same key (failures: invalid_dpop_proof).
        bound = current.jkt if current is not None else None
        jkt = await self.dpop.check(
            request.dpop_proofs,
            htm="POST",
            htu=request.htu,
            required=client.require_dpop,
            bound_jkt=bound,
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
        # The RevocationRegistry of the subject's chain (did:pkh chain id, did:ethr
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
            try:
                await self.did_recheck(current.sub, current.extra.get("auth_key"))
            except AccessDenied as exc:
                # The key no longer authenticates the DID (revoked or expired delegate,
                # former owner, deactivated DID): the session ends, on the feed too, so its
                # access tokens stop working at the resource servers as well.
                reason = exc.reason if exc.reason.startswith("did_") else f"did_{exc.reason}"
                await self.revocations.revoke_sid(current.sid, reason=reason)
                raise
        session, new_refresh = await self.sessions.rotate(
            refresh_token, revocations=self.revocations
        )
        if scopes is None:  # pragma: no cover - rotate() refuses unknown sessions
            raise InvalidScope("unknown session")
        grant = session_grant(session, scopes)
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
