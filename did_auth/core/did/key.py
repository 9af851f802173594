"""did:key (W3C CCG "The did:key Method v0.7/v0.9"): a DID that is a public key.

    did-key-format := did:key:MULTIBASE(base58-btc,
                                        MULTICODEC(public-key-type, raw-public-key-bytes))

Supported key types (multicodec table, unsigned-varint code):

| codec           | code | raw key                         | DID prefix |
| --------------- | ---- | ------------------------------- | ---------- |
| `ed25519-pub`   | 0xed | 32 bytes                        | `z6Mk`     |
| `secp256k1-pub` | 0xe7 | 33 bytes, SEC 1 compressed form | `zQ3s`     |

The spec: "the multibase value MUST be base58-btc (`z`)"; the document has exactly one
verification method, whose fragment is the multibase value itself, referenced from
`authentication`, `assertionMethod`, `capabilityInvocation` and `capabilityDelegation`. The
method cannot be updated or deactivated, so resolution needs no network.

Every identifier is checked to be canonical (minimal varint, re-encodes to the same text, a
valid curve point), so one key has exactly one did:key string.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Literal

from coincurve import PublicKey

from did_auth.core.did.document import DidDocument, Resolution, VerificationMethod
from did_auth.core.errors import InvalidRequest

__all__ = [
    "ED25519_PUB",
    "SECP256K1_PUB",
    "KeyDid",
    "b58decode",
    "b58encode",
    "decode_multikey",
    "did_key",
    "encode_multikey",
    "parse_did_key",
    "resolve_did_key",
]

KeyType = Literal["Ed25519", "secp256k1"]

ED25519_PUB: Final = 0xED
SECP256K1_PUB: Final = 0xE7
_CODECS: Final[dict[int, tuple[KeyType, int]]] = {
    ED25519_PUB: ("Ed25519", 32),
    SECP256K1_PUB: ("secp256k1", 33),
}
_B58: Final = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_INDEX: Final = {c: i for i, c in enumerate(_B58)}
_DID_KEY_RE: Final = re.compile(r"did:key:(z[1-9A-HJ-NP-Za-km-z]{1,128})")


def b58encode(data: bytes) -> str:
    """Base58 (Bitcoin alphabet): each leading zero byte is one `1`."""
    zeros = len(data) - len(data.lstrip(b"\0"))
    n = int.from_bytes(data, "big")
    out = []
    while n:
        n, rem = divmod(n, 58)
        out.append(_B58[rem])
    return "1" * zeros + "".join(reversed(out))


def b58decode(text: str) -> bytes:
    n = 0
    for c in text:
        i = _B58_INDEX.get(c)
        if i is None:
            raise ValueError("not base58")
        n = n * 58 + i
    zeros = len(text) - len(text.lstrip("1"))
    body = n.to_bytes((n.bit_length() + 7) // 8, "big") if n else b""
    return b"\0" * zeros + body


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _read_varint(data: bytes) -> tuple[int, int]:
    """(value, length) of the unsigned varint at the start of `data`; minimal encodings only
    (multiformats unsigned-varint: "MUST be minimally encoded", at most 9 bytes)."""
    value = 0
    for i, byte in enumerate(data[:9]):
        value |= (byte & 0x7F) << (7 * i)
        if not byte & 0x80:
            if i > 0 and byte == 0:
                raise ValueError("varint is not minimally encoded")
            return value, i + 1
    raise ValueError("truncated varint")


def encode_multikey(key_type: KeyType, raw: bytes) -> str:
    """`z` + base58btc(varint(codec) || raw key)."""
    codec = ED25519_PUB if key_type == "Ed25519" else SECP256K1_PUB
    return "z" + b58encode(_varint(codec) + raw)


def decode_multikey(multibase: str) -> tuple[KeyType, bytes]:
    """The key type and raw bytes of a base58btc multikey; ValueError when it is not one of
    the supported types, not canonical, or not a valid public key."""
    if not multibase.startswith("z"):
        raise ValueError("multibase must be base58-btc ('z')")
    data = b58decode(multibase[1:])
    codec, n = _read_varint(data)
    known = _CODECS.get(codec)
    if known is None:
        raise ValueError(f"unsupported multicodec 0x{codec:x}")
    key_type, size = known
    raw = data[n:]
    if len(raw) != size:
        raise ValueError(f"a {key_type} public key is {size} bytes")
    if key_type == "secp256k1":
        if raw[0] not in (2, 3):
            raise ValueError("secp256k1 key must be compressed")
        PublicKey(raw)  # raises ValueError on a point not on the curve
    if encode_multikey(key_type, raw) != multibase:
        raise ValueError("multibase is not in canonical form")
    return key_type, raw


@dataclass(frozen=True, slots=True)
class KeyDid:
    did: str
    multibase: str
    key_type: KeyType
    public_key: bytes


def did_key(key_type: KeyType, raw: bytes) -> str:
    """The did:key of an Ed25519 (32-byte) or compressed secp256k1 (33-byte) public key."""
    did = "did:key:" + encode_multikey(key_type, raw)
    parse_did_key(did)
    return did


def parse_did_key(did: str) -> KeyDid:
    m = _DID_KEY_RE.fullmatch(did)
    if m is None:
        raise InvalidRequest("not a did:key (did:key:z… base58btc multibase)", reason="did_syntax")
    try:
        key_type, raw = decode_multikey(m.group(1))
    except ValueError as exc:
        raise InvalidRequest(f"invalid did:key: {exc}", reason="did_syntax") from None
    return KeyDid(did=did, multibase=m.group(1), key_type=key_type, public_key=raw)


def resolve_did_key(parsed: KeyDid) -> Resolution:
    """did:key §"Read": expand the identifier into its one-key document (no network)."""
    vm_id = f"{parsed.did}#{parsed.multibase}"
    method = VerificationMethod(
        id=vm_id, type="Multikey", controller=parsed.did, public_key_multibase=parsed.multibase
    )
    refs = (vm_id,)
    doc = DidDocument(
        id=parsed.did,
        verification_method=(method,),
        authentication=refs,
        assertion_method=refs,
        capability_invocation=refs,
        capability_delegation=refs,
    )
    return Resolution(document=doc)
