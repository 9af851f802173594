"""`did_auth.verifier`: the name the server's users import; the code is `did_auth_verifier`.

The verifier is its own distribution (`did-auth-verifier`, in `verifier/` of this
repository), installable by a resource server without the did-auth server. This package
re-exports it so that `did_auth.verifier`, `did_auth.verifier.fastapi` and the other
submodules keep working: each submodule here is the `did_auth_verifier` module of the same
name (one module object, not a copy). `DidAuthError` is the verifier's `VerifierError`.
"""

from __future__ import annotations

from did_auth_verifier import (
    DEFAULT_DPOP_ALGS,
    DEFAULT_TOKEN_ALGS,
    AccessDenied,
    DPoPProof,
    DPoPVerifier,
    FeedFollower,
    InMemoryReplayCache,
    InsufficientScope,
    InsufficientUserAuthentication,
    InvalidDpopProof,
    InvalidRequest,
    InvalidToken,
    JWKSCache,
    ReplayCache,
    RevocationSet,
    RevocationView,
    TemporarilyUnavailable,
    TokenVerifier,
    UseDpopNonce,
    VerifiedToken,
    VerifierError,
    access_token_hash,
    jwk_thumbprint,
    make_dpop_proof,
    normalize_htu,
    parse_jwks,
)

DidAuthError = VerifierError

__all__ = [
    "DEFAULT_DPOP_ALGS",
    "DEFAULT_TOKEN_ALGS",
    "AccessDenied",
    "DPoPProof",
    "DPoPVerifier",
    "DidAuthError",
    "FeedFollower",
    "InMemoryReplayCache",
    "InsufficientScope",
    "InsufficientUserAuthentication",
    "InvalidDpopProof",
    "InvalidRequest",
    "InvalidToken",
    "JWKSCache",
    "ReplayCache",
    "RevocationSet",
    "RevocationView",
    "TemporarilyUnavailable",
    "TokenVerifier",
    "UseDpopNonce",
    "VerifiedToken",
    "VerifierError",
    "access_token_hash",
    "jwk_thumbprint",
    "make_dpop_proof",
    "normalize_htu",
    "parse_jwks",
]
