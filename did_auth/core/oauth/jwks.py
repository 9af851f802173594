"""Registered client keys for RFC 7523 `private_key_jwt` (an inline JWK Set per client)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from did_auth_verifier.jose import JoseError, PublicKey, public_key_from_jwk

__all__ = ["ASSERTION_ALGS", "client_public_keys"]

# Asymmetric algorithms only: a client assertion signed with `none` or an HMAC (HS*) is
# refused (RFC 8725 §3.1: the verifier fixes the algorithms it accepts).
ASSERTION_ALGS: Final = ("ES256", "EdDSA")
_ALG_OF: Final[dict[tuple[object, object], str]] = {
    ("EC", "P-256"): "ES256",
    ("OKP", "Ed25519"): "EdDSA",
}


def client_public_keys(jwks: Mapping[str, Any]) -> tuple[PublicKey, ...]:
    """The public keys of a JWK Set `{"keys": [...]}`; ValueError names the first problem.

    Each key's algorithm is its `alg` member when present, else the one its curve allows
    (P-256: ES256, Ed25519: EdDSA); private members are refused.
    """
    keys = jwks.get("keys") if isinstance(jwks, Mapping) else None
    if not isinstance(keys, list) or not keys:
        raise ValueError("jwks must be a JWK Set: {keys = [ ... ]} with at least one key")
    out = []
    for i, jwk in enumerate(keys):
        if not isinstance(jwk, Mapping):
            raise ValueError(f"jwks.keys[{i}]: not an object")
        alg = jwk.get("alg") or _ALG_OF.get((jwk.get("kty"), jwk.get("crv")))
        if alg not in ASSERTION_ALGS:
            raise ValueError(f"jwks.keys[{i}]: only ES256 (P-256) and EdDSA (Ed25519) keys")
        use = jwk.get("use")
        if use is not None and use != "sig":
            raise ValueError(f"jwks.keys[{i}]: use must be sig")
        try:
            out.append(public_key_from_jwk(jwk, alg=str(alg), allowed_algs=ASSERTION_ALGS))
        except JoseError as exc:
            raise ValueError(f"jwks.keys[{i}]: {exc}") from None
    return tuple(out)
