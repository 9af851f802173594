"""RFC 7662 token introspection as one use case: authenticate the caller (a resource server
or a client), budget it, and describe the token.

Only resource servers introspect. An access token is active while `LocalTokenCheck` accepts
it (signature, expiry, session, deny lists, on-chain registry) and its `aud` names the
calling resource server; a refresh token is never active to a resource server (RFC 6749
§1.5: refresh tokens "are never sent to resource servers"). An inactive token tells nothing
more (RFC 7662 §2.2).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from did_auth.core.errors import InvalidRequest
from did_auth.core.flows.guard import RequestContext
from did_auth.core.oauth.token_checks import TokenChecks

__all__ = ["IntrospectionEndpoint", "IntrospectionGuard"]


class IntrospectionGuard(Protocol):
    """The introspection budgets per source and per caller (`did_auth.core.policy.abuse`)."""

    async def endpoint_source(self, ctx: RequestContext, endpoint: str) -> None: ...

    async def introspect_request(self, resource_server: str) -> None: ...


@dataclass(eq=False, kw_only=True)
class IntrospectionEndpoint:
    checks: TokenChecks
    guard: IntrospectionGuard

    @property
    def url(self) -> str:
        return self.checks.issuer + "/introspect"

    async def handle(
        self, *, authorization: str | None, params: Mapping[str, str], ctx: RequestContext
    ) -> dict[str, Any]:
        """The introspection response (RFC 7662 §2.2) for `params["token"]`."""
        # Charged before authentication, as at /token and /revoke: failed attempts to
        # authenticate as a resource server are budgeted per source.
        await self.guard.endpoint_source(ctx, "introspect")
        # RFC 7662 §2.1: "To prevent token scanning attacks, the endpoint MUST also require
        # some form of authorization to access this endpoint": a configured resource server
        # or client, authenticated like a client at the token endpoint (Basic or post).
        caller = await self.checks.authenticator.authenticate(
            authorization, params, self.url, resource_server=True
        )
        await self.guard.introspect_request(caller.client_id)
        token = params.get("token")
        if not token:
            raise InvalidRequest("missing parameter: token")
        await self.checks.refresh_keys()
        return await self.introspect(token, caller.client_id)

    async def introspect(self, token: str, resource_server: str) -> dict[str, Any]:
        """RFC 7662 §2.2: `active` plus the token's claims; inactive tells nothing more."""
        claims = await self.checks.local.active_claims(token)
        if claims is None:
            # A refresh token, a revoked, expired or foreign one: all alike to a resource
            # server, which has no business holding a refresh token (RFC 6749 §1.5).
            return {"active": False}
        # RFC 7662 §4: "If the token can be used only at certain resource servers, the
        # authorization server MUST determine whether or not the token can be used at the
        # protected resource making the introspection call."
        aud = claims.get("aud")
        audiences = aud if isinstance(aud, list) else [aud]
        if resource_server not in audiences:
            return {"active": False}
        return {"active": True, "token_type": "access_token", **claims}
