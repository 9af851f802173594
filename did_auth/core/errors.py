"""One exception tree for did-auth; each class carries its OAuth error code and HTTP status.

    DidAuthError
    ├── InvalidRequest          400 invalid_request      (malformed input, unknown chain, ...)
    │   └── SiweParseError      400 invalid_request      (text is not EIP-4361)
    ├── InvalidClient           401 invalid_client       (client authentication failed)
    ├── UnsupportedGrantType    400 unsupported_grant_type
    ├── InvalidGrant            400 invalid_grant        (bad signature, replayed nonce, expired)
    ├── InvalidScope            400 invalid_scope
    ├── InvalidAuthorizationDetails 400 invalid_authorization_details (RFC 9396 §5)
    ├── AccessDenied            403 access_denied        (revoked, suspended, not allowed)
    ├── InsufficientUserAuthentication 401 insufficient_user_authentication (RFC 9470)
    ├── InvalidToken            401 invalid_token
    ├── InvalidDpopProof        400 invalid_dpop_proof
    ├── UseDpopNonce            400 use_dpop_nonce
    ├── ResourceAccessError     401 invalid_token / invalid_dpop_proof / use_dpop_nonce
    │                               (did-auth's own protected resources: a challenge)
    ├── RateLimited             429 slow_down            (carries retry_after)
    ├── TemporarilyUnavailable  503 temporarily_unavailable (Redis or a chain is down: fail closed)
    └── ConfigError             --  (CLI exit 1; never reaches HTTP)

The HTTP layer maps this tree to `{"error", "error_description"}` in exactly one place
(`did_auth.edge.api.errors`). Descriptions are safe to show to clients: they never contain
secrets, signatures or stack traces.
"""

from __future__ import annotations

__all__ = [
    "AccessDenied",
    "ConfigError",
    "DidAuthError",
    "InsufficientUserAuthentication",
    "InvalidAuthorizationDetails",
    "InvalidClient",
    "InvalidDpopProof",
    "InvalidGrant",
    "InvalidRequest",
    "InvalidScope",
    "InvalidToken",
    "RateLimited",
    "ResourceAccessError",
    "SiweParseError",
    "TemporarilyUnavailable",
    "UnsupportedGrantType",
    "UnsupportedMediaType",
    "UseDpopNonce",
]


class DidAuthError(Exception):
    """Base of every error did-auth raises on purpose."""

    code: str = "server_error"
    status: int = 500

    def __init_subclass__(cls, *, code: str = "", status: int = 0, **kwargs: object) -> None:
        """`class X(DidAuthError, code=..., status=...)`: the OAuth error code and the HTTP
        status of X (inherited when not given)."""
        super().__init_subclass__(**kwargs)
        if code:
            cls.code = code
        if status:
            cls.status = status

    def __init__(self, description: str = "", *, reason: str | None = None) -> None:
        super().__init__(description or self.code)
        self.description = description or self.code
        # A short machine-readable reason for audit logs and metrics (never shown verbatim
        # to clients beyond the description).
        self.reason = reason or self.code

    def to_dict(self) -> dict[str, str]:
        return {"error": self.code, "error_description": self.description}


class InvalidRequest(DidAuthError, code="invalid_request", status=400):
    """Malformed input, a missing parameter, an unknown chain (RFC 6749 §5.2)."""


class SiweParseError(InvalidRequest):
    """The text is not a well-formed EIP-4361 message (or fields violate the ABNF)."""


class InvalidClient(DidAuthError, code="invalid_client", status=401):
    """Client authentication failed (RFC 6749 §5.2). `basic` tells the HTTP edge that the
    client tried the `Authorization: Basic` header, which it must then challenge."""

    def __init__(
        self, description: str = "", *, basic: bool = False, reason: str | None = None
    ) -> None:
        super().__init__(description, reason=reason)
        self.basic = basic


class UnsupportedGrantType(DidAuthError, code="unsupported_grant_type", status=400):
    """RFC 6749 §5.2: the authorization server does not support this grant type."""


class InvalidGrant(DidAuthError, code="invalid_grant", status=400):
    """A bad signature, a replayed nonce, an expired, revoked or foreign grant (RFC 6749
    §5.2)."""


class UnsupportedMediaType(InvalidRequest, status=415):
    """RFC 9110 §15.5.16: the request's `Content-Type` is not one the endpoint accepts."""


class InvalidScope(DidAuthError, code="invalid_scope", status=400):
    """RFC 6749 §5.2: the requested scope is invalid, unknown, or exceeds the grant."""


class InvalidAuthorizationDetails(
    DidAuthError, code="invalid_authorization_details", status=400
):
    """RFC 9396 §5: the `authorization_details` are of an unknown type, have unknown or
    missing fields, fields of the wrong type or invalid values."""


class AccessDenied(DidAuthError, code="access_denied", status=403):
    """Revoked, suspended, or not allowed (the reason tells which rule refused)."""


class InsufficientUserAuthentication(
    DidAuthError, code="insufficient_user_authentication", status=401
):
    """RFC 9470 §3: the token's authentication event is too old for this resource;
    `max_age` (seconds) is what it needs. The HTTP edge adds the challenge, in the scheme
    the token was presented with (`scheme`: Bearer, or DPoP for a DPoP-bound token)."""

    def __init__(
        self, description: str = "", *, max_age: int, scheme: str = "Bearer",
        reason: str | None = None,
    ) -> None:
        super().__init__(description, reason=reason)
        self.max_age = max_age
        self.scheme = scheme


class InvalidToken(DidAuthError, code="invalid_token", status=401):
    """RFC 6750 §3.1: the access token is expired, revoked, malformed or invalid."""


class InvalidDpopProof(DidAuthError, code="invalid_dpop_proof", status=400):
    """RFC 9449 §7.1: the DPoP proof is missing, malformed or does not match."""


class UseDpopNonce(DidAuthError, code="use_dpop_nonce", status=400):
    def __init__(self, description: str = "", *, nonce: str, reason: str | None = None) -> None:
        super().__init__(description or "a DPoP nonce is required", reason=reason)
        self.nonce = nonce


class ResourceAccessError(DidAuthError, status=401):
    """A request to one of did-auth's own protected resources (`/userinfo`, `/otp/*`) did
    not pass the access-token check (RFC 6750 §3, RFC 9449 §7.1). Always 401; the HTTP edge
    answers with a `WWW-Authenticate` challenge of the scheme the client used (`scheme`),
    naming `challenge_error`. Without usable credentials (`scheme` None) the challenge has no
    error code (RFC 6750 §3.1) and offers both schemes; `algs` are the DPoP proof algorithms
    accepted (RFC 9449 §7.1), `nonce` a DPoP nonce to use (§9)."""

    def __init__(
        self,
        description: str,
        *,
        error: str | None,
        scheme: str | None,
        algs: tuple[str, ...],
        nonce: str | None = None,
        reason: str | None = None,
    ) -> None:
        super().__init__(description, reason=reason or error or "token_missing")
        self.code = error or "invalid_token"
        self.challenge_error = error
        self.scheme = scheme
        self.algs = algs
        self.nonce = nonce


class RateLimited(DidAuthError, code="slow_down", status=429):
    def __init__(
        self, description: str = "", *, retry_after: int, reason: str | None = None
    ) -> None:
        super().__init__(description or "too many requests", reason=reason)
        self.retry_after = max(1, int(retry_after))


class TemporarilyUnavailable(DidAuthError, code="temporarily_unavailable", status=503):
    """Redis or a chain cannot answer: the decision fails closed (503), a check is
    never skipped."""


class ConfigError(DidAuthError, code="invalid_config", status=500):
    """An invalid configuration; `problems` lists `key.path: message` strings."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems
