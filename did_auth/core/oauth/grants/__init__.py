"""Token endpoint grants (RFC 6749 §4-6): one handler per `grant_type`, behind one
interface (`GrantHandler`); the token endpoint (`did_auth.core.oauth.token_endpoint`)
authenticates the client and dispatches by a registry, never by an if-chain."""

from did_auth.core.oauth.grants.base import GrantHandler, TokenRequest

__all__ = ["GrantHandler", "TokenRequest"]
