"""The PKCS#11 signing backend: keys generated and used inside the token, never here.

- Key pairs: CKM_EC_KEY_PAIR_GEN on P-256 (ES256) or CKM_EC_EDWARDS_KEY_PAIR_GEN on
  Ed25519 (EdDSA), as token objects (CKA_TOKEN), the private key CKA_SENSITIVE and not
  CKA_EXTRACTABLE (PKCS#11 v2.40 §4.9: its value can never leave the token), labelled
  (CKA_LABEL, CKA_ID) with the kid: the RFC 7638 thumbprint of the public JWK.
- ES256: CKM_ECDSA over the SHA-256 digest of the signing input. Its output is R || S
  (PKCS#11 v2.40 §2.3.1), which is the JWS form (RFC 7518 §3.4: "the JWS Signature value
  MUST be a 64-octet sequence"); S is made low, as did-auth's verifier requires.
  EdDSA: CKM_EDDSA over the signing input (RFC 8037 §3.1).
- The JWKS: each key's CKA_EC_POINT (a DER OCTET STRING holding the uncompressed point,
  or the 32-octet Ed25519 key), whose thumbprint must equal the kid (a swapped object is
  refused, never published).
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping
from typing import Any

from asn1crypto.core import OctetString
from did_auth_verifier.jose import b64url_encode, jwk_thumbprint
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass
from pkcs11.util.ec import encode_named_curve_parameters

from did_auth.adapters.hsm.token import HsmUnavailable, Pkcs11Token, TokenSession
from did_auth.core.ports import store_keys
from did_auth.core.tokens.signing import Alg, es256_low_s

__all__ = ["Pkcs11Backend", "public_jwk_from_point"]

_ED25519_OID = "1.3.101.112"  # RFC 8410 id-Ed25519


def public_jwk_from_point(alg: Alg, point: bytes) -> dict[str, Any]:
    """The public JWK of a CKA_EC_POINT value (DER OCTET STRING, or the bare point)."""
    raw = point
    if (alg == "ES256" and len(point) != 65) or (alg == "EdDSA" and len(point) != 32):
        raw = OctetString.load(point).native
    if alg == "EdDSA":
        if len(raw) != 32:
            raise ValueError("CKA_EC_POINT is not an Ed25519 public key")
        return {"kty": "OKP", "crv": "Ed25519", "x": b64url_encode(raw)}
    if len(raw) != 65 or raw[0] != 4:
        raise ValueError("CKA_EC_POINT is not an uncompressed P-256 point")
    return {"kty": "EC", "crv": "P-256", "x": b64url_encode(raw[1:33]),
            "y": b64url_encode(raw[33:])}


class Pkcs11Backend:
    """`SigningBackend` over one PKCS#11 token."""

    name = "pkcs11"
    store_key = store_keys.HSM_SIGNING_KEYS

    def __init__(self, token: Pkcs11Token) -> None:
        self.token = token
        self._public: dict[str, dict[str, Any]] = {}

    def generate(self, alg: Alg) -> tuple[str, dict[str, Any]]:
        def op(ts: TokenSession) -> tuple[str, dict[str, Any]]:
            temporary = "did-auth-new-" + secrets.token_hex(8)
            if alg == "ES256":
                key_type, curve = KeyType.EC, "secp256r1"
                mechanism = Mechanism.EC_KEY_PAIR_GEN
            else:
                key_type, curve = KeyType.EC_EDWARDS, _ED25519_OID
                mechanism = Mechanism.EC_EDWARDS_KEY_PAIR_GEN
            params = ts.session.create_domain_parameters(
                key_type, {Attribute.EC_PARAMS: encode_named_curve_parameters(curve)}, local=True
            )
            public, private = params.generate_keypair(
                store=True,
                label=temporary,
                id=temporary.encode(),
                mechanism=mechanism,
                public_template={Attribute.VERIFY: True},
                private_template={
                    Attribute.SENSITIVE: True,
                    Attribute.EXTRACTABLE: False,
                    Attribute.PRIVATE: True,
                    Attribute.SIGN: True,
                },
            )
            jwk = public_jwk_from_point(alg, public[Attribute.EC_POINT])
            kid = jwk_thumbprint(jwk)
            for obj in (public, private):
                obj[Attribute.LABEL] = kid
                obj[Attribute.ID] = kid.encode()
            return kid, jwk

        kid, jwk = self.token.run(op)
        self._public[kid] = jwk
        return kid, {}

    def public_jwk(self, record: Mapping[str, Any]) -> dict[str, Any]:
        kid, alg = str(record["kid"]), record["alg"]
        if kid not in self._public:

            def op(ts: TokenSession) -> bytes:
                return bytes(ts.find(ObjectClass.PUBLIC_KEY, kid)[Attribute.EC_POINT])

            jwk = public_jwk_from_point(alg, self.token.run(op))
            if jwk_thumbprint(jwk) != kid:
                raise HsmUnavailable(
                    f"token {self.token.label!r}: the public key labelled {kid} is not that "
                    "key (its RFC 7638 thumbprint differs)"
                )
            self._public[kid] = jwk
        return self._public[kid]

    def sign(self, kid: str, alg: Alg, signing_input: bytes) -> bytes:
        def op(ts: TokenSession) -> bytes:
            private = ts.find(ObjectClass.PRIVATE_KEY, kid)
            if alg == "EdDSA":
                return bytes(private.sign(signing_input, mechanism=Mechanism.EDDSA))
            digest = hashlib.sha256(signing_input).digest()
            return es256_low_s(bytes(private.sign(digest, mechanism=Mechanism.ECDSA)))

        return self.token.run(op)

    def destroy(self, kid: str) -> None:
        def op(ts: TokenSession) -> None:
            ts.forget(kid)
            for obj in list(ts.session.get_objects({Attribute.LABEL: kid})):
                obj.destroy()

        self.token.run(op)
        self._public.pop(kid, None)

    def check(self, kid: str | None) -> None:
        def op(ts: TokenSession) -> None:
            if kid is not None:
                ts.find(ObjectClass.PRIVATE_KEY, kid, cached=False)

        self.token.run(op)
