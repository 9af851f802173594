"""Downstream verifier for did-auth access tokens (RFC 9068 JWTs, optionally DPoP-bound).

The `did-auth-verifier` distribution: installable without the did-auth server (no web3,
redis or fastapi); it needs only `cryptography` and the standard library. FastAPI
integration lives in `did_auth_verifier.fastapi` (extra `fastapi`), imported explicitly; the
optional Redis push of the revocation feed in `did_auth_verifier.redis_push` (extra `redis`).
The JOSE primitives the did-auth server shares (base64url, strict JSON, JWK and RFC 7638
thumbprints, ES256/ES256K/EdDSA JWS) are in `did_auth_verifier.jose`.

    from did_auth_verifier import JWKSCache, TokenVerifier

    jwks = JWKSCache.for_issuer("https://auth.example")
    verifier = TokenVerifier("https://auth.example", "trading-api", jwks)
    token = verifier.verify(access_token, required_scopes=("trade:write",))

Secure by default: the verifier follows the issuer's revocation feed
(`https://auth.example/revocations`) in a daemon thread started on first use, and refuses
every token (503 `temporarily_unavailable`, "the revocation feed is stale ...") while its
view is older than `max_staleness` (30 s). `follow_revocations=False` disables this and is
unsafe (revoked tokens are accepted until they expire). Only access tokens whose ES256
signature is canonical (low s) are accepted.
"""

from __future__ import annotations

from did_auth_verifier.dpop import (
    DEFAULT_DPOP_ALGS,
    DPoPProof,
    DPoPVerifier,
    InMemoryReplayCache,
    ReplayCache,
    access_token_hash,
    jwk_thumbprint,
    make_dpop_proof,
    normalize_htu,
)
from did_auth_verifier.errors import (
    AccessDenied,
    InsufficientScope,
    InsufficientUserAuthentication,
    InvalidDpopProof,
    InvalidRequest,
    InvalidToken,
    TemporarilyUnavailable,
    UseDpopNonce,
    VerifierError,
)
from did_auth_verifier.jwks import DEFAULT_TOKEN_ALGS, JWKSCache, parse_jwks
from did_auth_verifier.revocations import FeedFollower, RevocationSet, RevocationView
from did_auth_verifier.tokens import TokenVerifier, VerifiedToken

__all__ = [
    "DEFAULT_DPOP_ALGS",
    "DEFAULT_TOKEN_ALGS",
    "AccessDenied",
    "DPoPProof",
    "DPoPVerifier",
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
