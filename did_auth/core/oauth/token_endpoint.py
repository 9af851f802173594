"""The token endpoint (RFC 6749 §3.2) as one use case: authenticate the client (§3.2.1),
budget it, dispatch to the handler of its `grant_type`, count and audit the outcome.

The HTTP edge only reads the request (form, `Authorization`, `DPoP`) and writes the answer.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from did_auth.core.errors import InvalidGrant, InvalidRequest, UnsupportedGrantType
from did_auth.core.flows.guard import RequestContext
from did_auth.core.oauth.client_auth import NONE, AuthenticatedClient, ClientAuthenticator
from did_auth.core.oauth.grants.base import GrantHandler, TokenRequest
from did_auth.core.ports.audit import Audit, AuditEvent, Counters, Outcome

__all__ = ["EndpointGuard", "TokenEndpoint", "TokenResult"]


class EndpointGuard(Protocol):
    """Rate limits of the client-authenticated endpoints (`did_auth.core.policy.abuse`)."""

    async def endpoint_source(self, ctx: RequestContext, endpoint: str) -> None: ...

    async def endpoint_client(
        self, client_id: str, endpoint: str, public_source: RequestContext | None = None
    ) -> None: ...


@dataclass(frozen=True)
class TokenResult:
    response: dict[str, Any]
    client: AuthenticatedClient
    grant_type: str


class TokenEndpoint:
    def __init__(
        self,
        *,
        issuer: str,
        authenticator: ClientAuthenticator,
        guard: EndpointGuard,
        handlers: Iterable[GrantHandler],
        refresh_keys: Callable[[], Awaitable[None]],
        audit: Audit,
        counters: Counters,
    ) -> None:
        self.url = issuer + "/token"
        self._authenticator = authenticator
        self._guard = guard
        self._refresh_keys = refresh_keys
        self._audit = audit
        self._counters = counters
        # grant_type -> handler: adding a grant is registering a handler.
        self.handlers: dict[str, GrantHandler] = {h.grant_type: h for h in handlers}

    @property
    def grant_types(self) -> list[str]:
        return sorted(self.handlers)

    async def handle(
        self,
        *,
        authorization: str | None,
        params: Mapping[str, str],
        dpop_proofs: list[str],
        ctx: RequestContext,
    ) -> TokenResult:
        grant_type = params.get("grant_type")
        if not grant_type:
            raise InvalidRequest("missing parameter: grant_type")
        await self._guard.endpoint_source(ctx, "token")
        # RFC 6749 §3.2.1: "Confidential clients or other clients issued client credentials
        # MUST authenticate with the authorization server as described in Section 2.3 when
        # making requests to the token endpoint." First, for every grant.
        client = await self._authenticator.authenticate(authorization, params, self.url)
        await self._guard.endpoint_client(
            client.client_id, "token", ctx if client.method == NONE else None
        )
        handler = self.handlers.get(grant_type)
        if handler is None:
            # RFC 6749 §5.2: "The authorization grant type is not supported by the
            # authorization server."
            raise UnsupportedGrantType(f"unsupported grant_type: {grant_type[:64]}")
        await self._refresh_keys()
        request = TokenRequest(client, params, dpop_proofs, self.url, ctx)
        try:
            response = await handler.exchange(request)
        except InvalidGrant as exc:
            if exc.reason == "code_replay":
                self._counters.anomaly("code_replay")
                self._audit.emit(
                    AuditEvent.REPLAY_DETECTED,
                    Outcome.DETECTED,
                    reason="code_replay",
                    ctx=ctx,
                    client_id=client.client_id,
                )
            raise
        self._counters.token_issued(grant_type)
        refreshed = grant_type == "refresh_token"
        self._audit.emit(
            AuditEvent.TOKEN_REFRESHED if refreshed else AuditEvent.TOKEN_ISSUED,
            Outcome.SUCCESS,
            ctx=ctx,
            client_id=client.client_id,
            scope=response.get("scope"),
            client_auth=client.method,
            **({} if refreshed else {"grant": grant_type}),
        )
        return TokenResult(response, client, grant_type)
