"""One strict JOSE and encoding module, shared by the verifier and the did-auth server.

* base64url (RFC 7515 §2): unpadded, URL-safe alphabet only, canonical (no stray bits), so
  that one value has exactly one serialisation;
* strict JSON (RFC 8259): UTF-8 only, duplicate member names refused, no NaN / Infinity;
* JWK <-> public key for ES256 (P-256), ES256K (secp256k1) and EdDSA (Ed25519), and the
  RFC 7638 JWK SHA-256 thumbprint;
* compact JWS (RFC 7515 §7.1) parsing, signing (raw r || s, low s) and verification through
  `cryptography`.

Design rules (RFC 8725 §3.1): "Libraries MUST enable the caller to specify a supported set
of algorithms and MUST NOT use any other algorithms when performing cryptographic
operations. [...] each key MUST be used with exactly one algorithm, and this MUST be
checked when the cryptographic operation is performed." A `PublicKey` therefore owns its
algorithm; there is no function taking a key and an algorithm separately.
"""

from __future__ import annotations

import binascii
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

__all__ = [
    "ALG_CURVES",
    "CompactJWS",
    "JoseError",
    "PublicKey",
    "b64url_decode",
    "b64url_encode",
    "json_dumps",
    "json_loads",
    "jwk_thumbprint",
    "low_s",
    "parse_compact",
    "parse_json_object",
    "public_jwk",
    "public_key_from_jwk",
    "sha256_b64url",
    "sign_jws",
]


class JoseError(ValueError):
    """Malformed JOSE input; callers translate it into the right did-auth error."""


# alg -> (kty, crv).  EdDSA here means Ed25519 only (RFC 8037); Ed448 is not accepted.
ALG_CURVES: Final[Mapping[str, tuple[str, str]]] = {
    "ES256": ("EC", "P-256"),
    "ES256K": ("EC", "secp256k1"),
    "EdDSA": ("OKP", "Ed25519"),
}

_EC_CURVES: Final[Mapping[str, ec.EllipticCurve]] = {
    "P-256": ec.SECP256R1(),
    "secp256k1": ec.SECP256K1(),
}
# Group orders, to reject r or s outside [1, n-1] before touching OpenSSL.
_EC_ORDERS: Final[Mapping[str, int]] = {
    "P-256": 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551,
    "secp256k1": 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141,
}
_ECDSA_SHA256: Final = ec.ECDSA(hashes.SHA256())

# JWK members that only exist in private keys (RFC 7518 §6.2.2, §6.3.2, §6.4; RFC 8037 §2).
PRIVATE_JWK_MEMBERS: Final = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})

# base64url -> standard alphabet; '+', '/' and '=' are mapped to '!' so that strict
# decoding rejects them: a base64url segment of a compact JWS has no padding and only
# the URL-safe alphabet (RFC 7515 §2, §7.1).
_B64URL_TO_STD: Final = bytes.maketrans(b"-_+/=", b"+/!!!")
_B64URL_ALPHABET: Final = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
# Characters whose unused low bits are zero, for a final character carrying 4 (length % 4
# == 2) or 2 (length % 4 == 3) unused bits (RFC 4648 §3.5: "pad bits MUST be set to zero").
_CANONICAL_LAST: Final = {
    2: frozenset(c for i, c in enumerate(_B64URL_ALPHABET) if i & 0xF == 0),
    3: frozenset(c for i, c in enumerate(_B64URL_ALPHABET) if i & 0x3 == 0),
}


def b64url_decode(segment: bytes | str) -> bytes:
    """Strict unpadded base64url decoding: refuses padding, '+', '/', whitespace, junk and
    non-zero pad bits (so that every byte string has exactly one accepted encoding)."""
    if isinstance(segment, str):
        try:
            segment = segment.encode("ascii")
        except UnicodeEncodeError as exc:
            raise JoseError("non-ASCII base64url") from exc
    rem = len(segment) % 4
    if rem == 1:
        raise JoseError("invalid base64url length")
    if rem and segment[-1] not in _CANONICAL_LAST[rem]:
        raise JoseError("non-canonical base64url (pad bits set)")
    try:
        return binascii.a2b_base64(
            segment.translate(_B64URL_TO_STD) + b"=" * ((4 - rem) % 4), strict_mode=True
        )
    except (binascii.Error, ValueError) as exc:
        raise JoseError("invalid base64url") from exc


def b64url_encode(data: bytes) -> str:
    return (
        binascii.b2a_base64(data, newline=False)
        .rstrip(b"=")
        .translate(bytes.maketrans(b"+/", b"-_"))
        .decode("ascii")
    )


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        # RFC 7515 §4: "The Header Parameter names within the JOSE Header MUST be unique;
        # JWS parsers MUST either reject JWSs with duplicate Header Parameter names or use a
        # JSON parser that returns only the lexically last duplicate member name". We
        # reject, here and for every other JSON we parse (RFC 8259 §4: names SHOULD be
        # unique; parsers disagree on duplicates, so two readers could see two values).
        raise JoseError("duplicate member name in JSON object")
    return obj


def _no_constant(name: str) -> Any:
    raise JoseError(f"{name} is not JSON")  # RFC 8259 §6: NaN and Infinity are not allowed


_DECODER: Final = json.JSONDecoder(object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
_ENCODER: Final = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _refuse_lone_surrogates(value: Any) -> None:
    # RFC 8259 §8.2: a string escaping an unpaired surrogate ("\ud800") is not Unicode text;
    # it would fail later wherever the string is encoded (hashing a DPoP htu, a log line).
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, str):
            try:
                node.encode("utf-8")
            except UnicodeEncodeError:
                raise JoseError("JSON string with an unpaired surrogate") from None
        elif isinstance(node, dict):
            stack.extend(node)
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)


def json_loads(data: bytes | str) -> Any:
    """Strict JSON: UTF-8 (RFC 8259 §8.1), duplicate names, NaN/Infinity and unpaired
    surrogates refused."""
    if isinstance(data, bytes | bytearray):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise JoseError("JSON is not UTF-8") from exc
    else:
        try:
            data.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise JoseError("JSON is not UTF-8") from exc
    try:
        value = _DECODER.decode(data)
    except JoseError:
        raise
    except (ValueError, TypeError, RecursionError) as exc:
        raise JoseError("invalid JSON") from exc
    if "\\u" in data:  # only an escape can produce a surrogate in UTF-8 text
        _refuse_lone_surrogates(value)
    return value


def json_dumps(obj: Any) -> bytes:
    """Compact UTF-8 JSON (no whitespace), as JWS headers and payloads are serialised."""
    try:
        return _ENCODER.encode(obj).encode("utf-8")
    except (ValueError, TypeError) as exc:
        raise JoseError("value is not JSON-serialisable") from exc


def parse_json_object(data: bytes | str) -> dict[str, Any]:
    """A strict JSON object (see `json_loads`); anything else raises `JoseError`."""
    obj = json_loads(data)
    if not isinstance(obj, dict):
        raise JoseError("JSON value is not an object")
    return obj


@dataclass(frozen=True, slots=True)
class CompactJWS:
    """A decoded compact JWS whose signature has NOT been checked."""

    header: dict[str, Any]
    claims: dict[str, Any]
    signing_input: bytes
    signature: bytes


def parse_compact(token: str) -> CompactJWS:
    """Split and decode `header.payload.signature` (RFC 7515 §7.1) with JSON object header
    and payload; raises `JoseError` on anything else."""
    if not isinstance(token, str):
        raise JoseError("token is not a string")
    parts = token.split(".")
    if len(parts) != 3:
        raise JoseError("not a compact JWS (three parts)")
    head, body, sig = parts
    return CompactJWS(
        header=parse_json_object(b64url_decode(head)),
        claims=parse_json_object(b64url_decode(body)),
        signing_input=f"{head}.{body}".encode("ascii"),
        signature=b64url_decode(sig),
    )


# RFC 7638 §3.2: the required members of each key type, in lexicographic order.
_THUMBPRINT_MEMBERS: Final[Mapping[str, tuple[str, ...]]] = {
    "EC": ("crv", "kty", "x", "y"),
    "OKP": ("crv", "kty", "x"),
    "RSA": ("e", "kty", "n"),
    "oct": ("k", "kty"),
}


def jwk_thumbprint(jwk: Mapping[str, Any]) -> str:
    """RFC 7638 JWK SHA-256 thumbprint, base64url without padding (`cnf.jkt`, key ids).

    RFC 7638 §3: "Construct a JSON object [RFC7159] containing only the required members
    of a JWK representing the key and with no whitespace or line breaks before or after any
    syntactic elements and with the required members ordered lexicographically by the
    Unicode [UNICODE] code points of the member names." then hash its UTF-8 with SHA-256.
    Supports EC, OKP, RSA and oct keys; raises `JoseError` on a malformed JWK.
    """
    if not isinstance(jwk, Mapping):
        raise JoseError("JWK is not an object")
    kty = jwk.get("kty")
    members = _THUMBPRINT_MEMBERS.get(kty) if isinstance(kty, str) else None
    if members is None:
        raise JoseError("unsupported JWK key type")
    canonical: dict[str, str] = {}
    for name in members:
        value = jwk.get(name)
        if not isinstance(value, str) or not value:
            raise JoseError(f"JWK member {name!r} missing")
        canonical[name] = value  # members are in lexicographic order already
    return sha256_b64url(json_dumps(canonical))


def _coordinate(jwk: Mapping[str, Any], name: str, size: int) -> bytes:
    value = jwk.get(name)
    if not isinstance(value, str):
        raise JoseError(f"JWK member {name!r} missing or not a string")
    raw = b64url_decode(value)
    # RFC 7518 §6.2.1.2: "The length of this octet string MUST be the full size of a
    # coordinate for the curve specified in the "crv" parameter."  Same for RFC 8037 "x".
    if len(raw) != size:
        raise JoseError(f"JWK member {name!r} has the wrong length")
    return raw


@dataclass(frozen=True, slots=True)
class PublicKey:
    """A public verification key bound to exactly one JWS algorithm."""

    alg: str
    key: ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey
    jwk: Mapping[str, str]  # public members only: kty, crv, x[, y]
    kid: str | None = None

    def verify(
        self, signing_input: bytes, signature: bytes, *, canonical_only: bool = False
    ) -> bool:
        """True when `signature` is a valid JWS signature of `signing_input` under `alg`.

        `canonical_only=True` also refuses ECDSA signatures with a high `s` (s > n/2). For
        every (r, s) that verifies, (r, n - s) verifies too, so without this rule anyone can
        turn a token into a second, different string that is equally valid (signature
        malleability). Access tokens come from did-auth, which signs with low `s`; proofs
        and assertions made by clients (DPoP, private_key_jwt) come from WebCrypto and JOSE
        libraries that emit either form, and RFC 7518 §3.4 does not require low `s`, so
        their callers leave it off. Ed25519 is canonical already (RFC 8032 §5.1.7: S < L).
        """
        key = self.key
        if isinstance(key, ed25519.Ed25519PublicKey):
            if len(signature) != 64:
                return False
            try:
                key.verify(signature, signing_input)
            except InvalidSignature:
                return False
            return True
        # RFC 7518 §3.4: the JWS signature is the 64-octet R || S (not DER).
        if len(signature) != 64:
            return False
        r = int.from_bytes(signature[:32], "big")
        s = int.from_bytes(signature[32:], "big")
        order = _EC_ORDERS[self.jwk["crv"]]
        if not (0 < r < order and 0 < s < order):
            return False
        if canonical_only and s > order // 2:
            return False  # non-canonical (high-s) twin of a valid signature
        try:
            key.verify(encode_dss_signature(r, s), signing_input, _ECDSA_SHA256)
        except InvalidSignature:
            return False
        return True


def public_key_from_jwk(
    jwk: Mapping[str, Any], *, alg: str, allowed_algs: frozenset[str] | tuple[str, ...]
) -> PublicKey:
    """Build a `PublicKey` for `alg` from a public JWK, checking kty/crv/size/on-curve.

    `alg` is chosen by the caller (from the JWKS entry or the DPoP header after the allow-list
    check), never inferred from the key. Private members are refused (RFC 9449 §4.2: the
    `jwk` "MUST NOT contain a private key").
    """
    if alg not in allowed_algs or alg not in ALG_CURVES:
        raise JoseError("algorithm not allowed")
    if not isinstance(jwk, Mapping):
        raise JoseError("JWK is not an object")
    if PRIVATE_JWK_MEMBERS.intersection(jwk):
        raise JoseError("JWK contains private key material")
    kty, crv = ALG_CURVES[alg]
    if jwk.get("kty") != kty or jwk.get("crv") != crv:
        raise JoseError("JWK type or curve does not match the algorithm")
    kid = jwk.get("kid")
    if kid is not None and not isinstance(kid, str):
        raise JoseError("JWK kid is not a string")
    if kty == "OKP":
        x = _coordinate(jwk, "x", 32)
        try:
            okp = ed25519.Ed25519PublicKey.from_public_bytes(x)
        except ValueError as exc:
            raise JoseError("invalid Ed25519 public key") from exc
        return PublicKey(alg=alg, key=okp, jwk={"crv": crv, "kty": kty, "x": jwk["x"]}, kid=kid)
    x = _coordinate(jwk, "x", 32)
    y = _coordinate(jwk, "y", 32)
    try:
        # Validates that (x, y) is on the curve (rejects invalid-curve points).
        eck = ec.EllipticCurvePublicNumbers(
            int.from_bytes(x, "big"), int.from_bytes(y, "big"), _EC_CURVES[crv]
        ).public_key()
    except ValueError as exc:
        raise JoseError("invalid EC public key") from exc
    return PublicKey(
        alg=alg, key=eck, jwk={"crv": crv, "kty": kty, "x": jwk["x"], "y": jwk["y"]}, kid=kid
    )


def public_jwk(
    key: ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey,
) -> tuple[str, dict[str, str]]:
    """(alg, public JWK) for a cryptography public key (P-256, secp256k1 or Ed25519)."""
    if isinstance(key, ed25519.Ed25519PublicKey):
        raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return "EdDSA", {"kty": "OKP", "crv": "Ed25519", "x": b64url_encode(raw)}
    if isinstance(key, ec.EllipticCurvePublicKey):
        numbers = key.public_numbers()
        if isinstance(key.curve, ec.SECP256R1):
            alg, crv = "ES256", "P-256"
        elif isinstance(key.curve, ec.SECP256K1):
            alg, crv = "ES256K", "secp256k1"
        else:
            raise JoseError("unsupported EC curve")
        return alg, {
            "kty": "EC",
            "crv": crv,
            "x": b64url_encode(numbers.x.to_bytes(32, "big")),
            "y": b64url_encode(numbers.y.to_bytes(32, "big")),
        }
    raise JoseError("unsupported key type")


def low_s(s: int, curve: ec.EllipticCurve) -> int:
    """The canonical (low) `s` of an ECDSA signature on `curve`: min(s, n - s)."""
    if isinstance(curve, ec.SECP256R1):
        order = _EC_ORDERS["P-256"]
    elif isinstance(curve, ec.SECP256K1):
        order = _EC_ORDERS["secp256k1"]
    else:
        raise JoseError("unsupported EC curve")
    return order - s if s > order // 2 else s


def sign_jws(
    private_key: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey,
    header: Mapping[str, Any],
    payload: Mapping[str, Any],
) -> str:
    """Compact JWS for `header`/`payload` (header must already carry the matching `alg`)."""
    signing_input = (
        b64url_encode(json_dumps(dict(header))) + "." + b64url_encode(json_dumps(dict(payload)))
    ).encode("ascii")
    if isinstance(private_key, ed25519.Ed25519PrivateKey):
        sig = private_key.sign(signing_input)
    elif isinstance(private_key, ec.EllipticCurvePrivateKey):
        if private_key.curve.key_size != 256:
            raise JoseError("unsupported EC curve")
        r, s = decode_dss_signature(private_key.sign(signing_input, _ECDSA_SHA256))
        sig = r.to_bytes(32, "big") + low_s(s, private_key.curve).to_bytes(32, "big")
    else:
        raise JoseError("unsupported private key type")
    return signing_input.decode("ascii") + "." + b64url_encode(sig)


def sha256_b64url(data: bytes) -> str:
    return b64url_encode(hashlib.sha256(data).digest())
