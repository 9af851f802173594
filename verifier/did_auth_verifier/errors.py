"""The verifier's own exception tree; each class carries its OAuth error code and HTTP status.

    VerifierError
    ├── InvalidRequest                  400 invalid_request     (RFC 6750 §3.1)
    ├── InvalidToken                    401 invalid_token       (RFC 6750 §3.1)
    ├── InvalidDpopProof                invalid_dpop_proof      (RFC 9449 §7.1: 401 at a
    │                                                            resource server)
    ├── UseDpopNonce                    use_dpop_nonce          (RFC 9449 §9; carries `nonce`)
    ├── AccessDenied                    403 access_denied
    │   └── InsufficientScope           403 insufficient_scope  (RFC 6750 §3.1)
    ├── InsufficientUserAuthentication  401 insufficient_user_authentication (RFC 9470 §3)
    └── TemporarilyUnavailable          503 temporarily_unavailable (JWKS / revocation feed
                                                                  unreachable: fail closed)

`did_auth_verifier.fastapi` turns these into `WWW-Authenticate` challenges. The did-auth
server has its own tree (`did_auth.core.errors`) and translates these where it uses the verifier;
this package imports nothing from the server.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = [
    "AccessDenied",
    "InsufficientScope",
    "InsufficientUserAuthentication",
    "InvalidDpopProof",
    "InvalidRequest",
    "InvalidToken",
    "TemporarilyUnavailable",
    "UseDpopNonce",
    "VerifierError",
]


class VerifierError(Exception):
    """Base of every error the verifier raises on purpose."""

    code: str = "server_error"
    status: int = 500

    def __init__(self, description: str = "", *, reason: str | None = None) -> None:
        super().__init__(description or self.code)
        self.description = description or self.code
        # A short machine-readable reason for logs and metrics.
        self.reason = reason or self.code

    def to_dict(self) -> dict[str, str]:
        return {"error": self.code, "error_description": self.description}


class InvalidRequest(VerifierError):
    code = "invalid_request"
    status = 400


class InvalidToken(VerifierError):
    code = "invalid_token"
    status = 401


class InvalidDpopProof(VerifierError):
    code = "invalid_dpop_proof"
    status = 400


class UseDpopNonce(VerifierError):
    code = "use_dpop_nonce"
    status = 400

    def __init__(self, description: str = "", *, nonce: str, reason: str | None = None) -> None:
        super().__init__(description or "a DPoP nonce is required", reason=reason)
        self.nonce = nonce


class AccessDenied(VerifierError):
    code = "access_denied"
    status = 403


class TemporarilyUnavailable(VerifierError):
    code = "temporarily_unavailable"
    status = 503


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


class InsufficientUserAuthentication(VerifierError):
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
