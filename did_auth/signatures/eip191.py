"""EIP-191 `personal_sign` (version 0x45) hashing and secp256k1 recovery, with EIP-55 addresses.

Recovery uses coincurve (libsecp256k1). Every malformed or unverifiable signature raises
`did_auth.errors.InvalidGrant` (never another exception type), with `reason=` one of:

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

from coincurve import PublicKey
from Crypto.Hash import keccak as _keccak

from did_auth.errors import InvalidGrant

__all__ = [
    "MAX_SIGNATURE_BYTES",
    "SECP256K1_HALF_N",
    "SECP256K1_N",
    "is_checksum_address",
    "keccak256",
    "parse_hex_signature",
    "personal_message_hash",
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

_HEX_RE = re.compile(r"[0-9a-fA-F]*")
_ADDRESS_RE = re.compile(r"0x[0-9a-fA-F]{40}")
_PERSONAL_PREFIX = b"\x19Ethereum Signed Message:\n"


def keccak256(data: bytes) -> bytes:
    """Keccak-256 (the pre-FIPS SHA-3 variant Ethereum uses)."""
    return _keccak.new(digest_bits=256, data=data).digest()


# --- EIP-55 -------------------------------------------------------------------------------


def _checksum_hex(lower_hex: str) -> str:
    """EIP-55: upper-case the i-th hex letter iff the i-th nibble of keccak(lower_hex) >= 8."""
    digest = keccak256(lower_hex.encode("ascii")).hex()
    return "0x" + "".join(
        c.upper() if c > "9" and digest[i] >= "8" else c for i, c in enumerate(lower_hex)
    )


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
    return _checksum_hex(address[2:].lower()) == address


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
        raise InvalidGrant("signature must be a 0x-prefixed hex string", reason="malformed_signature")
    if not sig.startswith("0x"):
        raise InvalidGrant("signature must start with 0x", reason="malformed_signature")
    body = sig[2:]
    if not body:
        raise InvalidGrant("signature is empty", reason="malformed_signature")
    if len(body) > 2 * MAX_SIGNATURE_BYTES:
        raise InvalidGrant("signature is too long", reason="malformed_signature")
    if len(body) % 2:
        raise InvalidGrant("signature hex has an odd number of digits", reason="malformed_signature")
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
        raise InvalidGrant("signature recovery byte v must be 0, 1, 27 or 28", reason="bad_recovery_id")
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
    compact = _compact_recoverable(signature)
    digest = personal_message_hash(message)
    try:
        public = PublicKey.from_signature_and_message(compact, digest, hasher=None)
    except Exception as exc:  # libsecp256k1 reports every failure the same way
        raise InvalidGrant("signature does not recover to a public key", reason="recovery_failed") from exc
    # Address = last 20 bytes of keccak256 of the 64-byte uncompressed point (no 0x04 prefix).
    return keccak256(public.format(compressed=False)[1:])[12:]


def recover_personal(message: bytes, signature: bytes) -> str:
    """EIP-55 address that signed `message` with EIP-191 personal_sign."""
    return _checksum_hex(recover_personal_raw(message, signature).hex())
