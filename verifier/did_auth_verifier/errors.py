"""Verifier errors: the project tree plus the two resource-server-only outcomes.

    did_auth.errors.InvalidToken            401 invalid_token      (RFC 6750 §3.1)
    did_auth.errors.InvalidDpopProof        invalid_dpop_proof     (RFC 9449 §7.1: 401 at a
                                                                    resource server)
    did_auth.errors.UseDpopNonce            use_dpop_nonce         (RFC 9449 §9)
    did_auth.errors.TemporarilyUnavailable  503                    (JWKS / revocation feed
                                                                    unreachable: fail closed)
    InsufficientScope(AccessDenied)         403 insufficient_scope (RFC 6750 §3.1)
    InsufficientUserAuthentication          401 insufficient_user_authentication (RFC 9470 §3)

`did_auth.verifier.fastapi` turns these into `WWW-Authenticate` challenges.
"""

from __future__ import annotations

from collections.abc import Iterable

from did_auth.errors import (
    AccessDenied,
    DidAuthError,
    InvalidDpopProof,
    InvalidRequest,
    InvalidToken,
    TemporarilyUnavailable,
    UseDpopNonce,
)

__all__ = [
    "AccessDenied",
    "DidAuthError",
    "InsufficientScope",
    "InsufficientUserAuthentication",
    "InvalidDpopProof",
    "InvalidRequest",
    "InvalidToken",
    "TemporarilyUnavailable",
    "UseDpopNonce",
]


class InsufficientScope(AccessDenied):
    """The token is valid but lacks a required scope: HTTP 403 `insufficient_scope`.

    RFC 6750 §3.1: "The request requires higher privileges than provided by the access
    token. The resource server SHOULD respond with the HTTP 403 (Forbidden) status code
    and MAY include the "scope" attribute with the scope necessary to access the
    protected resource."
    """

    code = "insufficient_scope"
    status = 403

    def __init__(
        self, description: str = "", *, required: Iterable[str], reason: str | None = None
    ) -> None:
        super().__init__(description or "insufficient scope", reason=reason)
        self.required_scopes: tuple[str, ...] = tuple(required)


class InsufficientUserAuthentication(DidAuthError):
    """Valid token whose authentication event is too weak or too old (RFC 9470 §3).

    Answered with 401 and `error="insufficient_user_authentication"` plus `max_age`.
    """

    code = "insufficient_user_authentication"
    status = 401

    def __init__(
        self, description: str = "", *, max_age: int | None = None, reason: str | None = None
    ) -> None:
        super().__init__(description or "step-up authentication required", reason=reason)
        self.max_age = max_age
