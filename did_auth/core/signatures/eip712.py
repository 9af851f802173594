"""EIP-712 typed structured data: `encodeType`, `hashStruct`, the domain separator and the
digest a wallet signs (`eth_signTypedData_v4`), written from the EIP's text.

Only what the spec defines, nothing a wallet would not do:

* EIP-712 §Definition of `encodeType`: "The type of a struct is encoded as
  `name ‖ "(" ‖ member₁ ‖ "," ‖ member₂ ‖ "," ‖ … ‖ memberₙ ")"` where each member is written
  as `type ‖ " " ‖ name`" and "If the struct type references other struct types (and these
  in turn reference even more struct types), then the set of referenced struct types is
  collected, sorted by name and appended to the encoding."
* §Definition of `hashStruct`: `hashStruct(s) = keccak256(typeHash ‖ encodeData(s))`,
  `typeHash = keccak256(encodeType(typeOf(s)))`.
* §Definition of `encodeData`: "Each encoded member value is exactly 32-byte long": bool,
  address (uint160), `intN` / `uintN` (sign-extended, big endian), `bytesN` (zero-padded at
  the end); "The dynamic values `bytes` and `string` are encoded as a keccak256 hash of their
  contents"; arrays as the keccak256 of the concatenated `encodeData` of their elements;
  structs recursively as `hashStruct(value)`.
* §Definition of `domainSeparator`: `hashStruct(eip712Domain)`, where the `EIP712Domain`
  struct lists, in the order name, version, chainId, verifyingContract, salt, only the
  fields the domain uses ("Unused fields are left out of the struct type").
* §Specification: `encode(domainSeparator, message) = "\\x19\\x01" ‖ domainSeparator ‖
  hashStruct(message)`; the signed digest is its keccak256.

Values are checked against their types (an integer out of range, an address that is not
20 bytes, a wrong-length `bytesN`) and every violation is `ValueError`: the caller decides
what that means for its request. Pure: the project's keccak256 only.

`withdrawal_typed_data` / `withdrawal_digest` build did-auth's withdrawal approval (the
interface's `Withdrawal` primary type under the domain `{"name": "did-auth", "version":
"1", "chainId"}`, no `verifyingContract`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, Final

from did_auth.core.signatures.eip191 import keccak256

__all__ = [
    "DOMAIN_NAME",
    "DOMAIN_VERSION",
    "WITHDRAWAL_FIELDS",
    "WITHDRAWAL_TYPE",
    "domain_separator",
    "encode_data",
    "encode_type",
    "hash_struct",
    "typed_data_digest",
    "withdrawal_digest",
    "withdrawal_typed_data",
]

Types = Mapping[str, Sequence[Mapping[str, str]]]

DOMAIN_NAME: Final = "did-auth"
DOMAIN_VERSION: Final = "1"
#: The interface's primary type, exactly: `Withdrawal(string audience,string asset,string
#: amount,string destination,string network,string nonce,uint256 expiresAt)`.
WITHDRAWAL_FIELDS: Final = (
    ("audience", "string"),
    ("asset", "string"),
    ("amount", "string"),
    ("destination", "string"),
    ("network", "string"),
    ("nonce", "string"),
    ("expiresAt", "uint256"),
)
WITHDRAWAL_TYPE: Final = "Withdrawal"

# EIP-712 §Definition of domainSeparator: the fields, in this order, that a domain may use.
_DOMAIN_FIELDS: Final = (
    ("name", "string"),
    ("version", "string"),
    ("chainId", "uint256"),
    ("verifyingContract", "address"),
    ("salt", "bytes32"),
)
_ARRAY: Final = re.compile(r"^(.+)\[(\d*)\]$")
_INT: Final = re.compile(r"^(u?)int(\d{0,3})$")
_BYTES_N: Final = re.compile(r"^bytes(\d{1,2})$")
_IDENT: Final = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$]*$")


def _base(type_name: str) -> str:
    """The struct or atomic type an (array) type is made of: `Person[][2]` -> `Person`."""
    while (m := _ARRAY.match(type_name)) is not None:
        type_name = m.group(1)
    return type_name


def _dependencies(primary: str, types: Types, found: set[str]) -> None:
    if primary in found or primary not in types:
        return
    found.add(primary)
    for member in types[primary]:
        _dependencies(_base(member["type"]), types, found)


def encode_type(primary: str, types: Types) -> str:
    """EIP-712 `encodeType`: the primary type, then every struct type it references
    (transitively) sorted by name, each as `Name(type name,...)`."""
    if primary not in types:
        raise ValueError(f"unknown struct type {primary!r}")
    found: set[str] = set()
    _dependencies(primary, types, found)
    found.discard(primary)
    out = []
    for name in (primary, *sorted(found)):
        if not _IDENT.match(name):
            raise ValueError(f"invalid struct type name {name!r}")
        members = ",".join(f"{m['type']} {m['name']}" for m in types[name])
        out.append(f"{name}({members})")
    return "".join(out)


def _word_int(value: object, bits: int, signed: bool) -> bytes:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError("an integer value must be an int")
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    if not lo <= value <= hi:
        raise ValueError(f"{value} is out of range for {'' if signed else 'u'}int{bits}")
    # "Integer values are sign-extended to 256-bit and encoded in big endian order."
    return (value % (1 << 256)).to_bytes(32, "big")


def _as_bytes(value: object) -> bytes:
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if isinstance(value, str) and value.startswith("0x"):
        try:
            return bytes.fromhex(value[2:])
        except ValueError:
            raise ValueError("bytes value is not hexadecimal") from None
    raise ValueError("a bytes value must be bytes or 0x-hex")


def _encode_value(type_name: str, value: Any, types: Types) -> bytes:
    """One member's 32-byte `encodeData` word."""
    array = _ARRAY.match(type_name)
    if array is not None:
        inner, length = array.group(1), array.group(2)
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{type_name} needs a list")
        if length and len(value) != int(length):
            raise ValueError(f"{type_name} needs exactly {length} elements")
        # "The array values are encoded as the keccak256 hash of the concatenated
        # encodeData of their contents".
        return keccak256(b"".join(_encode_value(inner, v, types) for v in value))
    if type_name in types:
        if not isinstance(value, Mapping):
            raise ValueError(f"{type_name} needs an object")
        return hash_struct(type_name, value, types)
    if type_name == "string":
        if not isinstance(value, str):
            raise ValueError("a string value must be a str")
        return keccak256(value.encode("utf-8"))
    if type_name == "bytes":
        return keccak256(_as_bytes(value))
    if type_name == "bool":
        if not isinstance(value, bool):
            raise ValueError("a bool value must be a bool")
        return int(value).to_bytes(32, "big")
    if type_name == "address":
        raw = _as_bytes(value)
        if len(raw) != 20:
            raise ValueError("an address is 20 bytes")
        return raw.rjust(32, b"\x00")  # "Addresses are encoded as uint160."
    m = _INT.match(type_name)
    if m is not None:
        bits = int(m.group(2) or 256)
        if bits % 8 or not 8 <= bits <= 256:
            raise ValueError(f"invalid integer type {type_name!r}")
        return _word_int(value, bits, signed=not m.group(1))
    m = _BYTES_N.match(type_name)
    if m is not None:
        size = int(m.group(1))
        raw = _as_bytes(value)
        if not 1 <= size <= 32 or len(raw) != size:
            raise ValueError(f"{type_name} needs exactly {size} bytes")
        return raw.ljust(32, b"\x00")  # "zero-padded at the end to bytes32"
    raise ValueError(f"unknown type {type_name!r}")


def encode_data(primary: str, data: Mapping[str, Any], types: Types) -> bytes:
    """EIP-712 `encodeData`: the members' 32-byte words in the order of the type; every
    member must be present and no other."""
    members = types[primary]
    names = [m["name"] for m in members]
    if set(data) != set(names):
        raise ValueError(f"{primary} needs exactly the members {', '.join(names)}")
    return b"".join(_encode_value(m["type"], data[m["name"]], types) for m in members)


def hash_struct(primary: str, data: Mapping[str, Any], types: Types) -> bytes:
    """EIP-712 `hashStruct(s) = keccak256(typeHash ‖ encodeData(s))`."""
    type_hash = keccak256(encode_type(primary, types).encode("utf-8"))
    return keccak256(type_hash + encode_data(primary, data, types))


def _domain_types(domain: Mapping[str, Any]) -> list[dict[str, str]]:
    unknown = set(domain) - {name for name, _ in _DOMAIN_FIELDS}
    if unknown:
        raise ValueError(f"unknown EIP712Domain fields: {', '.join(sorted(unknown))}")
    return [{"name": n, "type": t} for n, t in _DOMAIN_FIELDS if n in domain]


def domain_separator(domain: Mapping[str, Any]) -> bytes:
    """`hashStruct(eip712Domain)` over the fields the domain uses, in the EIP's order."""
    return hash_struct("EIP712Domain", domain, {"EIP712Domain": _domain_types(domain)})


def typed_data_digest(
    domain: Mapping[str, Any], primary: str, message: Mapping[str, Any], types: Types
) -> bytes:
    """keccak256("\\x19\\x01" ‖ domainSeparator ‖ hashStruct(message)): what the wallet's
    key signs (`eth_signTypedData_v4`) and what EIP-1271 `isValidSignature` is asked about.
    `types` need not name `EIP712Domain` (it is derived from `domain`)."""
    own = {k: v for k, v in types.items() if k != "EIP712Domain"}
    return keccak256(
        b"\x19\x01" + domain_separator(domain) + hash_struct(primary, message, own)
    )


def withdrawal_typed_data(
    *,
    chain_id: int,
    audience: str,
    asset: str,
    amount: str,
    destination: str,
    network: str,
    nonce: str,
    expires_at: int,
) -> dict[str, Any]:
    """The whole `eth_signTypedData_v4` payload of a withdrawal approval (what a dApp hands
    the wallet): types, primaryType, domain, message."""
    return {
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
            ],
            WITHDRAWAL_TYPE: [{"name": n, "type": t} for n, t in WITHDRAWAL_FIELDS],
        },
        "primaryType": WITHDRAWAL_TYPE,
        "domain": {"name": DOMAIN_NAME, "version": DOMAIN_VERSION, "chainId": chain_id},
        "message": {
            "audience": audience,
            "asset": asset,
            "amount": amount,
            "destination": destination,
            "network": network,
            "nonce": nonce,
            "expiresAt": expires_at,
        },
    }


def withdrawal_digest(**fields: Any) -> bytes:
    """The EIP-712 digest of a withdrawal approval (keyword arguments as
    `withdrawal_typed_data`)."""
    data = withdrawal_typed_data(**fields)
    return typed_data_digest(data["domain"], data["primaryType"], data["message"], data["types"])
