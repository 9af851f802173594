"""The interface every grant handler implements."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from did_auth.core.errors import InvalidRequest
from did_auth.core.flows.guard import RequestContext
from did_auth.core.oauth.client_auth import AuthenticatedClient

__all__ = ["GrantHandler", "TokenRequest"]


@dataclass(frozen=True)
class TokenRequest:
    """A token request whose client has already been authenticated."""

    client: AuthenticatedClient
    params: Mapping[str, str]  # the form parameters (RFC 6749 §3.2)
    dpop_proofs: list[str]  # the DPoP header values (RFC 9449 §4)
    htu: str  # the token endpoint's URL, for the DPoP proof
    ctx: RequestContext

    def required(self, name: str, what: str = "") -> str:
        value = self.params.get(name)
        if not value:
            raise InvalidRequest(f"missing parameter: {name}{what}")
        return value


class GrantHandler(Protocol):
    grant_type: str

    async def exchange(self, request: TokenRequest) -> dict[str, Any]:
        """The token response (RFC 6749 §5.1) or a DidAuthError (§5.2)."""
        ...
