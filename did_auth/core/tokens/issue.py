"""RFC 9068 JWT access tokens: header `typ: at+jwt`, `kid`; claims as in the interface."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

from did_auth.core.clock import Clock
from did_auth.core.tokens.keys import KeyRing, SigningKey
from did_auth.core.tokens.signing import compact_jws

__all__ = ["AccessToken", "Grant", "TokenIssuer", "encode_jwt", "new_sid"]


def encode_jwt(
    claims: dict[str, Any], key: SigningKey, alg: str, headers: dict[str, Any]
) -> str:
    """A compact JWS (RFC 7515 §7.1) of `claims` under `alg`, with `headers` (typ, kid),
    signed by `key`'s backend (in process, or in a PKCS#11 token).

    ECDSA signatures are canonical (low s): for every valid (r, s), (r, n - s) is valid
    too, and `did_auth_verifier` refuses the high-s form as malleable; RFC 7518 §3.4 lets
    either form verify, so every other verifier accepts these tokens as well.
    """
    return compact_jws({"alg": alg, **headers}, claims, key.sign)


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
    # An OpenID Connect login (the code flow): its access tokens also name the issuer in
    # `aud`, so that they serve UserInfo (OIDC Core §5.3.1), never did-auth's OTP routes.
    userinfo: bool = False

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
        aud: str | list[str] = grant.audience
        if grant.userinfo and grant.audience != self._issuer:
            # RFC 7519 §4.1.3: "aud" is an array of case-sensitive strings when the token
            # has several audiences; the API's own audience stays first.
            aud = [grant.audience, self._issuer]
        claims: dict[str, Any] = {
            "iss": self._issuer,
            "sub": grant.sub,
            "aud": aud,
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
        token = encode_jwt(claims, key, key.alg, {"typ": "at+jwt", "kid": key.kid})
        return AccessToken(token=token, jti=jti, exp=now + ttl, ttl=ttl)
