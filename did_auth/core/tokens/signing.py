"""The signing-backend seam: where the token-signing keys live and how a JWS is signed.

`KeyRing` (tokens/keys.py) keeps the ring of key ids in the store and decides which key
signs and which keys are published; a `SigningBackend` holds the private keys. Two exist:

- `SealedBackend` (here): keys generated in this process and sealed with AES-256-GCM under
  the key-encryption key inside their ring records (`"sealed"`), so replicas share them.
- the PKCS#11 backend (`did_auth.adapters.hsm`, an adapter): keys generated inside a token (an HSM),
  non-extractable; the ring records carry only the kid, the token signs.

A signature is the JWS signature of RFC 7515 §5.1: ES256 is the raw 64-octet R || S of
RFC 7518 §3.4 ("the JWS Signature value MUST be a 64-octet sequence"), with a low S (the
verifier refuses the high-S twin as malleable); EdDSA is the 64-octet Ed25519 signature
(RFC 8037 §3.1).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Literal, Protocol

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from did_auth_verifier.jose import (
    b64url_decode,
    b64url_encode,
    json_dumps,
    jwk_thumbprint,
    low_s,
    public_jwk,
)

from did_auth.core.ports import store_keys
from did_auth.core.tokens.kek import Sealer

__all__ = [
    "Alg",
    "PrivateKey",
    "SealedBackend",
    "SigningBackend",
    "compact_jws",
    "es256_low_s",
    "es256_signature",
    "unseal_private_key",
]

Alg = Literal["ES256", "EdDSA"]
PrivateKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
_ECDSA_SHA256 = ec.ECDSA(hashes.SHA256())
_P256 = ec.SECP256R1()


class SigningBackend(Protocol):
    """Where private signing keys live. Every method may raise `TemporarilyUnavailable`
    (the key store cannot sign now: the caller answers 503, never signs otherwise)."""

    #: "sealed" or "pkcs11": the backend of the ring records this backend writes.
    name: str
    #: The store key of this backend's ring (one ring per backend).
    store_key: str

    def generate(self, alg: Alg) -> tuple[str, dict[str, Any]]:
        """A new key pair: its kid (the RFC 7638 thumbprint of its public JWK) and the
        backend's own fields of its ring record."""
        ...

    def public_jwk(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """The public JWK (kty, crv, x[, y]) of a ring record, ready to sign with."""
        ...

    def sign(self, kid: str, alg: Alg, signing_input: bytes) -> bytes:
        """The JWS signature of `signing_input` by key `kid`."""
        ...

    def destroy(self, kid: str) -> None:
        """Forget key `kid` for good (a withdrawn or expired key; in a token: destroyed)."""
        ...

    def check(self, kid: str | None) -> None:
        """Raise `TemporarilyUnavailable` unless key `kid` (or, None, the backend) can sign."""
        ...


def es256_signature(der: bytes) -> bytes:
    """RFC 7518 §3.4 R || S (32 octets each, big-endian) with a low S from a DER ECDSA
    signature."""
    r, s = decode_dss_signature(der)
    return r.to_bytes(32, "big") + low_s(s, _P256).to_bytes(32, "big")


def es256_low_s(raw: bytes) -> bytes:
    """A raw R || S P-256 signature (PKCS#11 CKM_ECDSA's output, PKCS#11 v2.40 §2.3.1) with
    its S made low: for every valid (r, s), (r, n - s) is valid too, and did-auth's
    verifier accepts only the low one (no malleable twin of a token)."""
    if len(raw) != 64:
        raise ValueError("an ES256 signature is 64 octets (RFC 7518 §3.4)")
    s = int.from_bytes(raw[32:], "big")
    return raw[:32] + low_s(s, _P256).to_bytes(32, "big")


def compact_jws(
    header: Mapping[str, Any], payload: Mapping[str, Any], sign: Callable[[bytes], bytes]
) -> str:
    """RFC 7515 §7.1 compact serialisation: BASE64URL(header) . BASE64URL(payload) .
    BASE64URL(sign(ASCII(those two joined by a dot)))."""
    signing_input = (
        b64url_encode(json_dumps(dict(header))) + "." + b64url_encode(json_dumps(dict(payload)))
    )
    return signing_input + "." + b64url_encode(sign(signing_input.encode("ascii")))


def _private_der(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def unseal_private_key(sealer: Sealer, record: Mapping[str, Any]) -> PrivateKey:
    """The private key of a sealed ring record (AES-256-GCM, the kid as associated data)."""
    der = sealer.open(b64url_decode(record["sealed"]), str(record["kid"]).encode())
    private = serialization.load_der_private_key(der, password=None)
    assert isinstance(private, ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey)
    return private


class SealedBackend:
    """Keys generated in this process, sealed under the key-encryption key in the store."""

    name = "sealed"
    store_key = store_keys.SIGNING_KEYS

    def __init__(self, sealer: Sealer) -> None:
        self.sealer = sealer
        self._keys: dict[str, PrivateKey] = {}

    def generate(self, alg: Alg) -> tuple[str, dict[str, Any]]:
        private: PrivateKey
        if alg == "ES256":
            private = ec.generate_private_key(_P256)
        else:
            private = ed25519.Ed25519PrivateKey.generate()
        kid = jwk_thumbprint(public_jwk(private.public_key())[1])
        self._keys[kid] = private
        return kid, {"sealed": b64url_encode(self.sealer.seal(_private_der(private), kid.encode()))}

    def public_jwk(self, record: Mapping[str, Any]) -> dict[str, Any]:
        kid = str(record["kid"])
        private = self._keys.get(kid)
        if private is None:
            private = self._keys[kid] = unseal_private_key(self.sealer, record)
        return public_jwk(private.public_key())[1]

    def private_key(self, kid: str) -> PrivateKey:
        """The in-process private key of `kid` (this backend only; tests read it)."""
        return self._keys[kid]

    def sign(self, kid: str, alg: Alg, signing_input: bytes) -> bytes:
        private = self._keys[kid]
        if isinstance(private, ed25519.Ed25519PrivateKey):
            return private.sign(signing_input)
        return es256_signature(private.sign(signing_input, _ECDSA_SHA256))

    def destroy(self, kid: str) -> None:
        self._keys.pop(kid, None)

    def check(self, kid: str | None) -> None:
        return None
