"""RFC 9068 JWT access tokens: header `typ: at+jwt`, `kid`; claims as in the interface."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec

from did_auth.clock import Clock
from did_auth.tokens.keys import KeyRing, PrivateKey
from did_auth.verifier._jose import b64url_decode, b64url_encode, low_s

__all__ = ["AccessToken", "Grant", "TokenIssuer", "encode_jwt", "new_sid"]


def encode_jwt(
    claims: dict[str, Any], key: PrivateKey, alg: str, headers: dict[str, Any]
) -> str:
    """A compact JWS whose ECDSA signature is canonical (low s).

    PyJWT emits whatever `s` OpenSSL drew; half of those are the high-s twin (r, n - s), which
    `did_auth.verifier` refuses as malleable. RFC 7518 §3.4 lets either form verify, so
    rewriting s to n - s keeps the signature valid for every other verifier too.
    """
    token = jwt.encode(claims, key, algorithm=alg, headers=headers)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        return token  # Ed25519 signatures are canonical by construction (RFC 8032)
    signing_input, _, sig64 = token.rpartition(".")
    sig = b64url_decode(sig64)
    half = len(sig) // 2
    s = int.from_bytes(sig[half:], "big")
    canonical = low_s(s, key.curve)
    if canonical == s:
        return token
    return signing_input + "." + b64url_encode(sig[:half] + canonical.to_bytes(half, "big"))


def new_sid() -> str:
    """A session id: 0x + 64 hex digits, directly a `bytes32` for RevocationRegistry.revoke."""
    return "0x" + secrets.token_hex(32)


@dataclass(frozen=True)
class Grant:
    """What a successful proof earned: who, for whom, which scopes, how authenticated."""

    sub: str
    client_id: str
    audience: str
    scopes: tuple[str, ...]
    auth_time: int
    amr: tuple[str, ...]
    sid: str
    jkt: str | None = None  # DPoP key thumbprint when the tokens are DPoP-bound
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def scope(self) -> str:
        return " ".join(self.scopes)


@dataclass(frozen=True)
class AccessToken:
    token: str
    jti: str
    exp: int
    ttl: int


class TokenIssuer:
    def __init__(self, keys: KeyRing, clock: Clock, *, issuer: str) -> None:
        self._keys = keys
        self._clock = clock
        self._issuer = issuer

    @property
    def keys(self) -> KeyRing:
        return self._keys

    def issue(self, grant: Grant, ttl: int) -> AccessToken:
        key = self._keys.signing_key()
        now = int(self._clock.now())
        jti = secrets.token_urlsafe(16)
        claims: dict[str, Any] = {
            "iss": self._issuer,
            "sub": grant.sub,
            "aud": grant.audience,
            "exp": now + ttl,
            "iat": now,
            "jti": jti,
            "client_id": grant.client_id,
            "scope": grant.scope,
            "sid": grant.sid,
            "auth_time": grant.auth_time,
            "amr": list(grant.amr),
            **grant.extra,
        }
        if grant.jkt:
            claims["cnf"] = {"jkt": grant.jkt}
        token = encode_jwt(claims, key.private_key, key.alg, {"typ": "at+jwt", "kid": key.kid})
        return AccessToken(token=token, jti=jti, exp=now + ttl, ttl=ttl)
