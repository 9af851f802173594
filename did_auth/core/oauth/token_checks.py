"""What the endpoints that take a token from an authenticated caller share: RFC 7009
revocation and RFC 7662 introspection authenticate the caller like a client at the token
endpoint, refresh the signing keys, and look the token up as an access token (signature)
or a refresh token (its session)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from did_auth.core.oauth.client_auth import ClientAuthenticator
from did_auth.core.tokens.local_check import LocalTokenCheck
from did_auth.core.tokens.sessions import SessionStore

__all__ = ["TokenChecks"]


@dataclass(frozen=True, eq=False, kw_only=True)
class TokenChecks:
    issuer: str
    authenticator: ClientAuthenticator
    refresh_keys: Callable[[], Awaitable[None]]
    sessions: SessionStore
    local: LocalTokenCheck
