"""DID proofs: compact JWS (RFC 7515 §7.1) JWTs (RFC 7519) in the did-jwt style.

The proof a DID presents to `/did/verify` (docs/interface.md, "The DID proof"): header `alg`
one of

- `ES256K`: secp256k1 ECDSA over SHA-256 of the signing input, signature `r || s` (64 bytes,
  RFC 8812 §3.2); `s` must be low (≤ n/2);
- `ES256K-R`: did-jwt's recoverable form, `r || s || recovery id` (65 bytes, id 0 or 1); the
  recovered key is compared with the method's key or, for `blockchainAccountId` /
  `ethereumAddress` methods, with its Ethereum address;
- `EdDSA`: Ed25519 (RFC 8037 §3.1) over the signing input itself;

and claims `iss` = the DID, `aud` = the audience of the challenge, `nonce` = the challenge,
`iat`, `exp`. Nothing else is accepted: `alg: none` (RFC 7518 §3.6 "MUST NOT be accepted" by
default), HMAC algorithms, unknown algorithms, a `crit` header (RFC 7515 §4.1.11: a
recipient that does not understand the listed extensions MUST reject the JWS), duplicate
JSON members, padded or non-canonical base64url.

RFC 7519 §4.1.3: "If the principal processing the claim does not identify itself with a
value in the `aud` claim when this claim is present, then the JWT MUST be rejected." did-auth
goes further: `aud` is REQUIRED and must be exactly the challenge's audience (a string, or an
array of that one string).

Key check (DID Core §5.3.1): only methods referenced from the document's `authentication`
relationship may sign a login proof. Outcomes:

| signature                                               | error            |
| ------------------------------------------------------- | ---------------- |
| malformed (length, range, high-s, bad recovery id)       | `invalid_grant`  |
| verifies with an authentication method                  | accepted         |
| made by a key the DID knows but that may not log in now: | `access_denied`  |
|   an assertion-only (`veriKey`) key, a revoked or expired |                  |
|   delegate, a former owner                                |                  |
| made by no key of this DID (another DID's key, a tampered | `invalid_grant`  |
|   payload)                                                |                  |
"""

from __future__ import annotations

import base64
import hashlib
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from coincurve import PrivateKey, PublicKey
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from did_auth_verifier.jose import (
    JoseError,
    b64url_decode,
    b64url_encode,
    json_dumps,
    parse_json_object,
)

from did_auth.core.did.document import Resolution, VerificationMethod
from did_auth.core.did.key import b58decode, decode_multikey
from did_auth.core.errors import AccessDenied, InvalidGrant, InvalidRequest
from did_auth.core.signatures.eip191 import SECP256K1_HALF_N, SECP256K1_N, keccak256

__all__ = [
    "ALGORITHMS",
    "DidProof",
    "check_claims",
    "match_signer",
    "parse_proof",
    "sign_proof",
    "verify_proof",
]

ALGORITHMS: Final = ("ES256K", "ES256K-R", "EdDSA")
MAX_PROOF_CHARS: Final = 8 * 1024
#: A proof may not claim a lifetime (exp - iat) longer than this.
MAX_PROOF_LIFETIME: Final = 3600

_NONCE_RE: Final = re.compile(r"[A-Za-z0-9]{8,128}")

_SECP256K1_TYPES: Final = frozenset(
    {
        "EcdsaSecp256k1VerificationKey2019",
        "EcdsaSecp256k1RecoveryMethod2020",
        "Secp256k1VerificationKey2018",
        "Secp256k1SignatureAuthentication2018",
    }
)
_ED25519_TYPES: Final = frozenset(
    {
        "Ed25519VerificationKey2018",
        "Ed25519VerificationKey2020",
        "Ed25519SignatureAuthentication2018",
    }
)
_CAIP10_EIP155_RE: Final = re.compile(r"eip155:[0-9]{1,32}:(0x[0-9a-fA-F]{40})")


# --------------------------------------------------------------------------- parsing


def _b64url_decode(part: str, what: str) -> bytes:
    # RFC 7515 §2: base64url "with all trailing '=' characters omitted"; the canonical
    # encoding only (no stray bits), so one proof has exactly one serialisation.
    try:
        return b64url_decode(part)
    except JoseError:
        raise InvalidRequest(
            f"proof {what} is not canonical base64url", reason="proof_syntax"
        ) from None


def _json_object(raw: bytes, what: str) -> dict[str, Any]:
    # Strict JSON: duplicate member names (RFC 7515 §4) and NaN / Infinity are refused.
    try:
        return parse_json_object(raw)
    except JoseError:
        raise InvalidRequest(f"proof {what} is not a JSON object", reason="proof_syntax") from None


def _numeric_date(claims: Mapping[str, Any], name: str, *, required: bool) -> float | None:
    v = claims.get(name)
    if v is None:
        if required:
            raise InvalidGrant(f"proof has no `{name}` claim", reason=f"{name}_missing")
        return None
    # RFC 7519 §2 NumericDate: a JSON number (bool is not one, nor NaN or infinities).
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise InvalidGrant(f"proof `{name}` is not a NumericDate", reason=f"{name}_invalid")
    return float(v)


@dataclass(frozen=True, slots=True)
class DidProof:
    """A syntactically valid proof whose signature has NOT been checked yet."""

    alg: str
    header: dict[str, Any]
    claims: dict[str, Any]
    signing_input: bytes
    signature: bytes
    issuer: str
    audience: str
    nonce: str
    issued_at: float
    expires_at: float
    not_before: float | None


def parse_proof(token: object) -> DidProof:
    """Split, decode and type-check a proof. `invalid_request` when it is not a compact JWS
    of JSON objects; `invalid_grant` when the header or claims are unacceptable."""
    if not isinstance(token, str) or not token:
        raise InvalidRequest("proof is required (a compact JWT)", reason="proof_syntax")
    if len(token) > MAX_PROOF_CHARS:
        raise InvalidRequest("proof is too long", reason="proof_syntax")
    parts = token.split(".")
    if len(parts) != 3:
        raise InvalidRequest("proof is not a compact JWS (three parts)", reason="proof_syntax")
    header = _json_object(_b64url_decode(parts[0], "header"), "header")
    claims = _json_object(_b64url_decode(parts[1], "payload"), "payload")
    signature = _b64url_decode(parts[2], "signature")

    alg = header.get("alg")
    if alg not in ALGORITHMS:
        raise InvalidGrant(f"proof alg must be one of {', '.join(ALGORITHMS)}", reason="proof_alg")
    if "crit" in header:
        raise InvalidGrant("proof header `crit` is not supported", reason="proof_crit")
    typ = header.get("typ")
    if typ is not None and (not isinstance(typ, str) or typ.upper() != "JWT"):
        raise InvalidGrant("proof `typ` must be JWT when present", reason="proof_typ")

    iss = claims.get("iss")
    if not isinstance(iss, str) or not iss:
        raise InvalidGrant("proof has no `iss` (the DID)", reason="iss_missing")
    sub = claims.get("sub")
    if sub is not None and sub != iss:
        raise InvalidGrant("proof `sub`, when present, must equal `iss`", reason="sub")
    aud = claims.get("aud")
    if aud is None:
        raise InvalidGrant("proof has no `aud`: the audience is required", reason="aud_missing")
    if isinstance(aud, list) and len(aud) == 1:
        aud = aud[0]
    if not isinstance(aud, str) or not aud:
        raise InvalidGrant("proof `aud` must be exactly one audience", reason="aud_invalid")
    nonce = claims.get("nonce")
    if not isinstance(nonce, str) or _NONCE_RE.fullmatch(nonce) is None:
        raise InvalidGrant("proof `nonce` must be the challenge", reason="nonce_invalid")
    iat = _numeric_date(claims, "iat", required=True)
    exp = _numeric_date(claims, "exp", required=True)
    nbf = _numeric_date(claims, "nbf", required=False)
    assert iat is not None and exp is not None
    return DidProof(
        alg=str(alg),
        header=header,
        claims=claims,
        signing_input=f"{parts[0]}.{parts[1]}".encode("ascii"),
        signature=signature,
        issuer=iss,
        audience=aud,
        nonce=nonce,
        issued_at=iat,
        expires_at=exp,
        not_before=nbf,
    )


def check_claims(
    proof: DidProof,
    *,
    now: float,
    skew: float,
    audience: str | None = None,
    issuer: str | None = None,
    nonce: str | None = None,
) -> None:
    """Times with `skew` seconds of tolerance; `aud`, `iss`, `nonce` when expected values are
    given. Everything raises `invalid_grant`."""
    if issuer is not None and proof.issuer != issuer:
        raise InvalidGrant("proof `iss` is not the DID", reason="iss")
    if audience is not None and proof.audience != audience:
        raise InvalidGrant("proof `aud` is not the challenge's audience", reason="aud")
    if nonce is not None and proof.nonce != nonce:
        raise InvalidGrant("proof `nonce` is not the challenge", reason="nonce")
    # RFC 7519 §4.1.4: "the current date/time MUST be before the expiration date/time".
    if proof.expires_at <= now - skew:
        raise InvalidGrant("proof has expired", reason="proof_expired")
    if proof.issued_at > now + skew:
        raise InvalidGrant("proof `iat` is in the future", reason="proof_iat")
    # RFC 7519 §4.1.5: "MUST NOT be accepted for processing" before `nbf`.
    if proof.not_before is not None and proof.not_before > now + skew:
        raise InvalidGrant("proof is not valid yet (`nbf`)", reason="proof_nbf")
    if proof.expires_at < proof.issued_at:
        raise InvalidGrant("proof `exp` is before `iat`", reason="proof_exp")
    if proof.expires_at - proof.issued_at > MAX_PROOF_LIFETIME:
        raise InvalidGrant(
            f"proof lifetime (exp - iat) exceeds {MAX_PROOF_LIFETIME} s", reason="proof_lifetime"
        )


# --------------------------------------------------------------------------- keys


def _decode_key_material(m: VerificationMethod) -> bytes | None:
    try:
        if m.public_key_hex is not None:
            return bytes.fromhex(m.public_key_hex.removeprefix("0x"))
        if m.public_key_base64 is not None:
            return base64.b64decode(m.public_key_base64, validate=True)
        if m.public_key_base58 is not None:
            return b58decode(m.public_key_base58)
    except ValueError:
        return None
    return None


def _key_material(
    m: VerificationMethod, types: frozenset[str], multikey_type: str
) -> bytes | None:
    """The raw public key of a method of one key type: a Multikey (or typed) multibase
    value naming that type, else the method's hex / base64 / base58 material."""
    if m.public_key_multibase is not None and m.type in ("Multikey", *types):
        try:
            key_type, raw = decode_multikey(m.public_key_multibase)
        except ValueError:
            return None
        return raw if key_type == multikey_type else None
    return _decode_key_material(m) if m.type in types else None


def _secp256k1_key(m: VerificationMethod) -> bytes | None:
    """The compressed secp256k1 key of a method that carries one."""
    raw = _key_material(m, _SECP256K1_TYPES, "secp256k1")
    if raw is None:
        return None
    try:
        return PublicKey(raw).format(compressed=True)
    except ValueError:
        return None


def _ed25519_key(m: VerificationMethod) -> bytes | None:
    raw = _key_material(m, _ED25519_TYPES, "Ed25519")
    return raw if raw is not None and len(raw) == 32 else None


def _address(m: VerificationMethod) -> str | None:
    """Lower-case 0x address of a `blockchainAccountId` (CAIP-10 eip155) or
    `ethereumAddress` method."""
    if m.blockchain_account_id is not None:
        hit = _CAIP10_EIP155_RE.fullmatch(m.blockchain_account_id)
        return hit.group(1).lower() if hit else None
    if m.ethereum_address is not None and re.fullmatch(r"0x[0-9a-fA-F]{40}", m.ethereum_address):
        return m.ethereum_address.lower()
    return None


def _eth_address(key: PublicKey) -> str:
    return "0x" + keccak256(key.format(compressed=False)[1:])[-20:].hex()


def _secp256k1_signers(proof: DidProof) -> list[PublicKey]:
    """The keys this ECDSA signature verifies under (recovered; low-s enforced)."""
    sig = proof.signature
    if proof.alg == "ES256K-R":
        if len(sig) != 65:
            raise InvalidGrant("an ES256K-R signature is 65 bytes", reason="signature_shape")
        if sig[64] not in (0, 1):
            raise InvalidGrant("ES256K-R recovery id must be 0 or 1", reason="signature_shape")
        recids: tuple[int, ...] = (sig[64],)
    else:
        if len(sig) != 64:
            raise InvalidGrant("an ES256K signature is 64 bytes (r || s)", reason="signature_shape")
        recids = (0, 1)
    r = int.from_bytes(sig[:32], "big")
    s = int.from_bytes(sig[32:64], "big")
    if not (0 < r < SECP256K1_N and 0 < s < SECP256K1_N):
        raise InvalidGrant("signature r or s out of range", reason="signature_shape")
    if s > SECP256K1_HALF_N:
        raise InvalidGrant("signature s is not canonical (high-s)", reason="signature_shape")
    digest = hashlib.sha256(proof.signing_input).digest()
    keys = []
    for recid in recids:
        try:
            keys.append(
                PublicKey.from_signature_and_message(sig[:64] + bytes([recid]), digest, hasher=None)
            )
        except Exception:  # noqa: S112 - libsecp256k1 finds no key for this recovery id
            continue
    if not keys:
        raise InvalidGrant("no public key can be recovered from the signature", reason="signature")
    return keys


def _signed_by(proof: DidProof, methods: Iterable[VerificationMethod]) -> VerificationMethod | None:
    methods = list(methods)
    if proof.alg == "EdDSA":
        if len(proof.signature) != 64:
            raise InvalidGrant("an EdDSA signature is 64 bytes", reason="signature_shape")
        for m in methods:
            key = _ed25519_key(m)
            if key is None:
                continue
            try:
                Ed25519PublicKey.from_public_bytes(key).verify(proof.signature, proof.signing_input)
            except (InvalidSignature, ValueError):
                continue
            return m
        return None
    signers = _secp256k1_signers(proof)
    compressed = {k.format(compressed=True) for k in signers}
    addresses = {_eth_address(k) for k in signers}
    for m in methods:
        key = _secp256k1_key(m)
        if key is not None and key in compressed:
            return m
        address = _address(m)
        if address is not None and address in addresses:
            return m
    return None


def match_signer(proof: DidProof, resolution: Resolution) -> VerificationMethod:
    """The authentication method of `resolution.document` that signed `proof` (see the
    module docstring for the errors)."""
    doc = resolution.document
    if proof.issuer != doc.id:
        raise InvalidGrant("proof `iss` is not the resolved DID", reason="iss")
    # The document lists keys with `validTo >= now` (the did:ethr spec); to log in, a key
    # must still be valid strictly after now, as the registry's own `validDelegate` reads it
    # (`validity > block.timestamp`): a delegate revoked in the current block (its validTo
    # set to that block's timestamp) can no longer log in.
    at = resolution.timestamp
    auth = tuple(
        m
        for m in doc.authentication_methods()
        if m.valid_to is None or at is None or m.valid_to > at
    )
    found = _signed_by(proof, auth)
    if found is not None:
        return found
    auth_ids = {m.id for m in auth}
    others = [m for m in doc.verification_method if m.id not in auth_ids]
    if _signed_by(proof, [*others, *resolution.history_keys]) is not None:
        raise AccessDenied(
            "the proof is signed by a key that is not (or no longer) an authentication key "
            "of the DID",
            reason="not_authentication_key",
        )
    raise InvalidGrant(
        "the proof's signature does not verify with any key of the DID", reason="signature"
    )


def verify_proof(
    token: object,
    resolution: Resolution,
    *,
    audience: str,
    nonce: str,
    now: float,
    skew: float,
) -> tuple[DidProof, VerificationMethod]:
    """Everything about a proof except single use: syntax, claims, and the signing key."""
    proof = parse_proof(token)
    check_claims(
        proof, now=now, skew=skew, audience=audience, issuer=resolution.document.id, nonce=nonce
    )
    if resolution.deactivated:
        raise AccessDenied("the DID is deactivated", reason="did_deactivated")
    return proof, match_signer(proof, resolution)


# --------------------------------------------------------------------------- signing


def sign_proof(
    claims: Mapping[str, Any], *, alg: str, private_key: bytes, kid: str | None = None
) -> str:
    """A did-jwt style proof (for bots and tests): header `{"alg", "typ": "JWT"}`.

    `private_key` is 32 raw bytes (secp256k1 scalar for ES256K / ES256K-R, Ed25519 seed for
    EdDSA). secp256k1 signatures are RFC 6979 deterministic and low-s (libsecp256k1).
    """
    if alg not in ALGORITHMS:
        raise ValueError(f"alg must be one of {ALGORITHMS}")
    header: dict[str, Any] = {"alg": alg, "typ": "JWT"}
    if kid is not None:
        header["kid"] = kid
    enc = [b64url_encode(json_dumps(part)) for part in (header, claims)]
    signing_input = ".".join(enc).encode("ascii")
    if alg == "EdDSA":
        sig = Ed25519PrivateKey.from_private_bytes(private_key).sign(signing_input)
    else:
        digest = hashlib.sha256(signing_input).digest()
        rec = PrivateKey(private_key).sign_recoverable(digest, hasher=None)
        sig = rec if alg == "ES256K-R" else rec[:64]
    return ".".join([*enc, b64url_encode(sig)])
