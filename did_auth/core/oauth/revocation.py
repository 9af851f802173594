"""RFC 7009 token revocation as one use case: authenticate the client, budget it, revoke
the token if it is live and was issued to that client.

Revoking either token of a session ends the whole session (its refresh-token family; RFC
7009 §2.1: "If the token passed to the request is an access token, the server MAY revoke
the respective refresh token as well"); the revocation feed gets one entry per session
actually ended, none for a token that was already revoked, expired or unknown.
"""

from __future__ import annotations

from collections.abc import Mapping

from did_auth.core.clock import Clock
from did_auth.core.errors import InvalidGrant, InvalidRequest
from did_auth.core.flows.guard import RequestContext
from did_auth.core.flows.revocations import RevocationBook
from did_auth.core.oauth.client_auth import NONE
from did_auth.core.oauth.token_checks import TokenChecks
from did_auth.core.oauth.token_endpoint import EndpointGuard
from did_auth.core.ports.audit import Audit, AuditEvent, Outcome
from did_auth.core.ports.store import Store
from did_auth.core.tokens.sessions import sid_of_refresh

__all__ = ["RevocationEndpoint"]

_OTHER_CLIENT = "the token was not issued to this client"


class RevocationEndpoint:
    def __init__(
        self,
        *,
        checks: TokenChecks,
        guard: EndpointGuard,
        revocations: RevocationBook,
        store: Store,
        clock: Clock,
        audit: Audit,
    ) -> None:
        self.url = checks.issuer + "/revoke"
        self._authenticator = checks.authenticator
        self._guard = guard
        self._refresh_keys = checks.refresh_keys
        self._sessions = checks.sessions
        self._local = checks.local
        self._revocations = revocations
        self._store = store
        self._clock = clock
        self._audit = audit

    async def handle(
        self, *, authorization: str | None, params: Mapping[str, str], ctx: RequestContext
    ) -> str | None:
        """Revoke `params["token"]`; returns the sid ended (None: nothing was live).

        RFC 7009 §2.2: "The authorization server responds with HTTP status code 200 if the
        token has been revoked successfully or if the client submitted an invalid token."
        """
        await self._guard.endpoint_source(ctx, "revoke")
        # RFC 7009 §2.1: "The client also includes its authentication credentials as
        # described in Section 2.3. of [RFC6749]" (public clients: their client_id).
        client = await self._authenticator.authenticate(authorization, params, self.url)
        await self._guard.endpoint_client(
            client.client_id, "revoke", ctx if client.method == NONE else None
        )
        token = params.get("token")
        if not token:
            raise InvalidRequest("missing parameter: token")
        # token_type_hint: "An authorization server MAY ignore this parameter" (§2.1); both
        # kinds are told apart by their form.
        await self._refresh_keys()
        sid = await self.revoke(client.client_id, token)
        if sid is not None:
            self._audit.emit(
                AuditEvent.TOKEN_REVOKED,
                Outcome.SUCCESS,
                ctx=ctx,
                client_id=client.client_id,
                sid=sid,
                reason="rfc7009",
            )
        return sid

    async def revoke(self, client_id: str, token: str) -> str | None:
        # RFC 7009 §2.1: "The authorization server first validates the client credentials
        # (in case of a confidential client) and then verifies whether the token was issued
        # to the client making the revocation request. If this validation fails, the
        # request is refused and the client is informed of the error by the authorization
        # server as described below." -> 400 invalid_grant (as authlib does; RFC 6749 §5.2
        # invalid_grant covers a grant "issued to another client").
        if sid_of_refresh(token) is not None:
            session = await self._sessions.current(token)
            if session is None:
                return None  # unknown, rotated out, expired or revoked: a no-op (§2.2)
            if session.client_id != client_id:
                raise InvalidGrant(_OTHER_CLIENT, reason="revoke_other_client")
            return (
                session.sid
                if await self._revocations.revoke_sid(session.sid, reason="rfc7009")
                else None
            )
        claims = self._local.signed_claims(token, verify_exp=False)
        if claims is None:
            return None  # not a token of ours: a no-op (§2.2)
        if claims.get("client_id") != client_id:
            raise InvalidGrant(_OTHER_CLIENT, reason="revoke_other_client")
        now = self._clock.now()
        exp = float(claims["exp"])
        if exp <= now:
            return None  # expired: nothing left to revoke
        sid = str(claims["sid"])
        jti = str(claims["jti"])
        session = await self._sessions.get(sid)
        if session is None:
            # The session record is gone but the token still lives: deny and announce it
            # (once; a second revocation finds it denied and adds nothing).
            await self._revocations.revoke_jti(jti, exp, reason="rfc7009")
            return None
        if not await self._revocations.revoke_sid(sid, reason="rfc7009"):
            if session.revoked:
                # Revoked already: a no-op (RFC 7009 §2.2), and a safe one. Every session
                # revocation (RFC 7009, refresh-token reuse, code replay, registry and DID
                # checks, the chain watcher) goes through RevocationBook.revoke_sid, which
                # writes the session's sid entry when it marks the session revoked (the
                # session store has no other way to revoke one), so that entry already
                # covers this token at every verifier following the feed.
                return None
            # Past the session's lifetime but not revoked: the token may outlive its
            # session, so it is denied and announced by jti (once).
            await self._revocations.revoke_jti(jti, exp, reason="rfc7009")
            return None
        # The session's entry covers this token; its jti is announced too, for followers
        # that deny by jti.
        await self._revocations.revoke_jti(jti, exp, reason="rfc7009")
        return sid
