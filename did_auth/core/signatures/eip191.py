"""EIP-191 `personal_sign` (version 0x45) hashing and secp256k1 recovery, with EIP-55 addresses.

Recovery uses coincurve (libsecp256k1). Every malformed or unverifiable signature raises
`did_auth.core.errors.InvalidGrant` (never another exception type), with `reason=` one of:

    malformed_signature   not bytes / not hex / wrong length / empty / too long
    bad_recovery_id       v not in {0, 1, 27, 28}
    bad_signature_value   r or s outside [1, n-1]
    high_s                s > n/2 (see below)
    recovery_failed       libsecp256k1 found no public key for (r, s, v, hash)

High-s decision: we REJECT s > n/2. EIP-2 made high-s transaction signatures invalid because
(r, s) and (r, n-s) are both valid for the same key and message (malleability). The
`ecrecover` precompile still accepts high-s, but OpenZeppelin's ECDSA library and
libsecp256k1's verifier reject it, and every reference wallet (eth-account, ethers, viem,
MetaMask, Ledger, Trezor) emits the canonical low-s form. Accepting a second encoding of
the same signature buys nothing for sign-in and gives attackers a way to create "new"
signatures (e.g. to evade a seen-signature cache), so one canonical form is enforced.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Final

from coincurve import PublicKey
from Crypto.Hash import keccak as _pycryptodome_keccak

from did_auth.core.errors import InvalidGrant

__all__ = [
    "MAX_SIGNATURE_BYTES",
    "SECP256K1_HALF_N",
    "SECP256K1_N",
    "is_checksum_address",
    "keccak256",
    "parse_hex_signature",
    "personal_message_hash",
    "recover_digest_raw",
    "recover_personal",
    "recover_personal_raw",
    "to_checksum_address",
]

#: Order of the secp256k1 group.
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
#: floor(n / 2): the largest s EIP-2 allows.
SECP256K1_HALF_N = SECP256K1_N // 2

#: Upper bound on a decoded signature. EOA signatures are 65 bytes; EIP-1271 contract-wallet
#: signatures (multisigs, passkey/WebAuthn wallets) and EIP-6492 wrappers (which carry the
#: factory calldata) are longer, but nothing legitimate comes near 32 KiB.
MAX_SIGNATURE_BYTES = 32 * 1024

_HEX_RE: Final = re.compile(r"[0-9a-fA-F]*")
_ADDRESS_RE: Final = re.compile(r"0x[0-9a-fA-F]{40}")
_PERSONAL_PREFIX: Final = b"\x19Ethereum Signed Message:\n"


def _keccak256_pycryptodome(data: bytes) -> bytes:
    return _pycryptodome_keccak.new(digest_bits=256, data=data).digest()


def _pick_keccak() -> Callable[[bytes], bytes]:
    # safe-pysha3's C extension is ~6x faster per call than pycryptodome's (whose cffi
    # round trips dominate for short inputs). It is installed with web3[tester] on CPython
    # (eth-tester -> eth-hash[pysha3]); pycryptodome (via eth-account) is the fallback.
    # Both compute the same function; tests check them against each other.
    try:
        from sha3 import keccak_256
    except ImportError:  # pragma: no cover - depends on the environment
        return _keccak256_pycryptodome

    def _keccak256_pysha3(data: bytes) -> bytes:
        return bytes(keccak_256(data).digest())

    return _keccak256_pysha3


#: Keccak-256 (the pre-FIPS SHA-3 padding Ethereum uses; not hashlib.sha3_256).
keccak256: Callable[[bytes], bytes] = _pick_keccak()


# --- EIP-55 -------------------------------------------------------------------------------
# EIP-55: hash the lowercase hex address (as ASCII) with keccak256; the i-th hex letter is
# upper case iff the i-th nibble of the hash is >= 8. Done on 40-byte integers instead of
# a per-character loop (3x faster):
#   - a hash hex digit is >= 8 iff its ASCII code has bit 0x40 ('a'-'f') or bit 0x08
#     ('8', '9') set; '0'-'7' (0x30-0x37) have neither;
#   - an address character is a letter iff bit 0x40 is set (digits are 0x30-0x39);
#   - upper-casing an ASCII letter clears bit 0x20.
_BIT40: Final = int.from_bytes(b"\x40" * 40, "big")
_BIT08: Final = int.from_bytes(b"\x08" * 40, "big")


def _checksum_ascii(lower_hex: bytes) -> bytes:
    """EIP-55 encoding (without 0x) of 40 lowercase ASCII hex digits."""
    hash_hex = int.from_bytes(keccak256(lower_hex).hex()[:40].encode("ascii"), "big")
    text = int.from_bytes(lower_hex, "big")
    nibble_ge_8 = ((hash_hex & _BIT40) >> 1) | ((hash_hex & _BIT08) << 2)
    is_letter = (text & _BIT40) >> 1
    return (text ^ (nibble_ge_8 & is_letter)).to_bytes(40, "big")


def _checksum_hex(lower_hex: str) -> str:
    return "0x" + _checksum_ascii(lower_hex.encode("ascii")).decode("ascii")


def to_checksum_address(address: bytes | str) -> str:
    """EIP-55 form of a 20-byte address or of a `0x`-prefixed 40-hex-digit string."""
    if isinstance(address, (bytes, bytearray)):
        if len(address) != 20:
            raise ValueError("an address is 20 bytes")
        return _checksum_hex(bytes(address).hex())
    if not isinstance(address, str) or _ADDRESS_RE.fullmatch(address) is None:
        raise ValueError("an address is 0x followed by 40 hex digits")
    return _checksum_hex(address[2:].lower())


def is_checksum_address(address: str) -> bool:
    """True iff `address` is exactly its own EIP-55 encoding (all-lowercase is NOT accepted)."""
    if not isinstance(address, str) or _ADDRESS_RE.fullmatch(address) is None:
        return False
    body = address[2:].encode("ascii")
    return _checksum_ascii(body.lower()) == body


# --- EIP-191 ------------------------------------------------------------------------------


def personal_message_hash(message: bytes) -> bytes:
    """keccak256(0x19 "Ethereum Signed Message:\\n" len(message) message), EIP-191 version 0x45.

    The length is the decimal ASCII byte length of `message`, as go-ethereum's personal_sign.
    """
    if not isinstance(message, (bytes, bytearray, memoryview)):
        raise InvalidGrant("the signed message must be bytes", reason="malformed_message")
    body = bytes(message)
    return keccak256(_PERSONAL_PREFIX + str(len(body)).encode("ascii") + body)


def parse_hex_signature(sig: str) -> bytes:
    """Decode a `0x`-prefixed hex signature of any even length (never truncates).

    65 bytes is an EOA signature; longer ones are EIP-1271 / EIP-6492 signatures and are
    returned whole for the contract-wallet path.
    """
    if not isinstance(sig, str):
        raise InvalidGrant(
            "signature must be a 0x-prefixed hex string", reason="malformed_signature"
        )
    if not sig.startswith("0x"):
        raise InvalidGrant("signature must start with 0x", reason="malformed_signature")
    body = sig[2:]
    if not body:
        raise InvalidGrant("signature is empty", reason="malformed_signature")
    if len(body) > 2 * MAX_SIGNATURE_BYTES:
        raise InvalidGrant("signature is too long", reason="malformed_signature")
    if len(body) % 2:
        raise InvalidGrant(
            "signature hex has an odd number of digits", reason="malformed_signature"
        )
    # bytes.fromhex would skip ASCII whitespace, so check the alphabet first.
    if _HEX_RE.fullmatch(body) is None:
        raise InvalidGrant("signature is not hexadecimal", reason="malformed_signature")
    return bytes.fromhex(body)


def _compact_recoverable(signature: bytes) -> bytes:
    """Check a 65-byte r || s || v signature and return r || s || recid for libsecp256k1."""
    if not isinstance(signature, (bytes, bytearray, memoryview)):
        raise InvalidGrant("signature must be bytes", reason="malformed_signature")
    sig = bytes(signature)
    if len(sig) != 65:
        raise InvalidGrant(
            f"an EOA signature is 65 bytes, got {len(sig)}", reason="malformed_signature"
        )
    v = sig[64]
    # EIP-191 signatures carry v = 27 + recid (Ethereum's legacy convention); some signers
    # (e.g. Ledger, raw libsecp256k1) emit the bare recovery id 0/1. EIP-155 style v values
    # (chain-id encoded) never apply to messages, so anything else is malformed.
    if v in (27, 28):
        recid = v - 27
    elif v in (0, 1):
        recid = v
    else:
        raise InvalidGrant(
            "signature recovery byte v must be 0, 1, 27 or 28", reason="bad_recovery_id"
        )
    r = int.from_bytes(sig[0:32], "big")
    s = int.from_bytes(sig[32:64], "big")
    # SEC 1 v2 section 4.1.4 step 1: r and s MUST be integers in [1, n-1].
    if not 0 < r < SECP256K1_N:
        raise InvalidGrant("signature r is out of range", reason="bad_signature_value")
    if not 0 < s < SECP256K1_N:
        raise InvalidGrant("signature s is out of range", reason="bad_signature_value")
    # EIP-2: "all transaction signatures whose s-value is greater than secp256k1n/2 are
    # now considered invalid". Applied to messages too; see the module docstring.
    if s > SECP256K1_HALF_N:
        raise InvalidGrant("signature s is not canonical (high-s)", reason="high_s")
    return sig[:64] + bytes((recid,))


def recover_personal_raw(message: bytes, signature: bytes) -> bytes:
    """The 20-byte address that produced `signature` over the EIP-191 personal message."""
    return recover_digest_raw(personal_message_hash(message), signature)


def recover_digest_raw(digest: bytes, signature: bytes) -> bytes:
    """The 20-byte address whose key produced the 65-byte `signature` of the 32-byte
    `digest` (an EIP-191 hash, or an EIP-712 `keccak256("\\x19\\x01" ‖ ...)`), with the
    same v, range and low-s rules as `recover_personal_raw`."""
    if not isinstance(digest, (bytes, bytearray)) or len(digest) != 32:
        raise InvalidGrant("the signed digest must be 32 bytes", reason="malformed_message")
    compact = _compact_recoverable(signature)
    digest = bytes(digest)
    try:
        public = PublicKey.from_signature_and_message(compact, digest, hasher=None)
    except Exception as exc:  # libsecp256k1 reports every failure the same way
        raise InvalidGrant(
            "signature does not recover to a public key", reason="recovery_failed"
        ) from exc
    # Address = last 20 bytes of keccak256 of the 64-byte uncompressed point (no 0x04 prefix).
    return keccak256(public.format(compressed=False)[1:])[12:]


def recover_personal(message: bytes, signature: bytes) -> str:
    """EIP-55 address that signed `message` with EIP-191 personal_sign."""
    return _checksum_hex(recover_personal_raw(message, signature).hex())
