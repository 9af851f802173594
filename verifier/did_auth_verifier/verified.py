"""A verified access token: the per-token record of the cold path (cached until `exp`) and
the read-only view of it one request gets (`VerifiedToken`)."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from did_auth_verifier.dpop import DPoPProof
from did_auth_verifier.jose import PublicKey

__all__ = ["TokenRecord", "VerifiedToken"]


def _freeze(value: Any) -> Any:
    if isinstance(value, dict):
        return MappingProxyType({k: _freeze(v) for k, v in value.items()})
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    return value


class TokenRecord:
    """The immutable, per-token result of the cold path (shared by every warm hit)."""

    __slots__ = (
        "alg",
        "amr",
        "aud",
        "auth_time",
        "claims",
        "client_id",
        "cnf_jkt",
        "exp",
        "iat",
        "iss",
        "jti",
        "key",
        "kid",
        "nbf",
        "scopes",
        "sid",
        "sub",
    )

    def __init__(
        self, claims: dict[str, Any], *, kid: str, alg: str, key: PublicKey, cnf_jkt: str | None
    ) -> None:
        self.claims: Mapping[str, Any] = _freeze(claims)
        self.kid = kid
        self.alg = alg
        self.key = key
        self.iss: str = claims["iss"]
        aud = claims["aud"]
        self.aud: tuple[str, ...] = (aud,) if isinstance(aud, str) else tuple(aud)
        self.sub: str = claims["sub"]
        self.client_id: str = claims["client_id"]
        self.jti: str = claims["jti"]
        self.exp: float = claims["exp"]
        self.iat: float = claims["iat"]
        self.nbf: float | None = claims.get("nbf")
        self.sid: str | None = claims.get("sid")
        self.auth_time: float | None = claims.get("auth_time")
        self.amr: tuple[str, ...] = tuple(claims.get("amr") or ())
        scope = claims.get("scope")
        self.scopes: frozenset[str] = frozenset(scope.split()) if scope else frozenset()
        self.cnf_jkt = cnf_jkt


class VerifiedToken:
    """A verified access token as presented on one request.

    Claims are read-only (nested objects too). `token_type` is `"DPoP"` when the token is
    DPoP-bound and a valid proof came with it (`dpop` holds the checked proof), else
    `"Bearer"`.
    """

    __slots__ = ("_r", "dpop", "token_type")

    def __init__(self, record: TokenRecord, token_type: str, dpop: DPoPProof | None) -> None:
        self._r = record
        self.token_type = token_type
        self.dpop = dpop

    @property
    def claims(self) -> Mapping[str, Any]:
        return self._r.claims

    @property
    def sub(self) -> str:
        return self._r.sub

    @property
    def client_id(self) -> str:
        return self._r.client_id

    @property
    def jti(self) -> str:
        return self._r.jti

    @property
    def sid(self) -> str | None:
        return self._r.sid

    @property
    def iss(self) -> str:
        return self._r.iss

    @property
    def aud(self) -> tuple[str, ...]:
        return self._r.aud

    @property
    def scopes(self) -> frozenset[str]:
        return self._r.scopes

    @property
    def exp(self) -> float:
        return self._r.exp

    @property
    def iat(self) -> float:
        return self._r.iat

    @property
    def auth_time(self) -> float | None:
        return self._r.auth_time

    @property
    def amr(self) -> tuple[str, ...]:
        return self._r.amr

    @property
    def cnf_jkt(self) -> str | None:
        return self._r.cnf_jkt

    @property
    def kid(self) -> str:
        return self._r.kid

    @property
    def alg(self) -> str:
        return self._r.alg

    def __repr__(self) -> str:  # never the token itself
        return (
            f"VerifiedToken(sub={self.sub!r}, client_id={self.client_id!r}, "
            f"scopes={sorted(self.scopes)!r}, token_type={self.token_type!r})"
        )
