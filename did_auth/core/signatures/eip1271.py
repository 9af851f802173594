"""EIP-1271 (standard signature validation for contracts): `isValidSignature(bytes32,bytes)`.

EIP-1271: the method MUST return the bytes4 magic value 0x1626ba7e when the signature is
valid. Anything else (another value, a revert, no return data because the address has no
code) means "not valid". This module only builds the call and reads the answer; the chain
layer (`did_auth.adapters.chain.wallet_signatures`) makes the call.
"""

from __future__ import annotations

from typing import Final

__all__ = ["MAGIC_VALUE", "SELECTOR", "is_magic_value", "is_valid_signature_calldata"]

#: bytes4(keccak256("isValidSignature(bytes32,bytes)")), which is also the magic value.
SELECTOR: Final = bytes.fromhex("1626ba7e")
MAGIC_VALUE: Final = SELECTOR
#: The magic value as its ABI return word: bytes4 left-aligned in 32 bytes.
_MAGIC_WORD: Final = MAGIC_VALUE + bytes(28)


def is_valid_signature_calldata(digest: bytes, signature: bytes) -> bytes:
    """ABI calldata of `isValidSignature(digest, signature)`. The signature is passed whole,
    whatever its length (multisig, passkey and wrapped signatures are longer than 65 bytes)."""
    if len(digest) != 32:
        raise ValueError("an EIP-1271 hash is 32 bytes")
    sig = bytes(signature)
    padded = sig + bytes(-len(sig) % 32)
    return (
        SELECTOR
        + digest
        + (64).to_bytes(32, "big")  # offset of the dynamic `bytes` argument
        + len(sig).to_bytes(32, "big")
        + padded
    )


def is_magic_value(return_data: bytes) -> bool:
    """True iff the call returned the ABI-encoded bytes4 0x1626ba7e (and nothing else in the
    first word). Like OpenZeppelin's SignatureChecker, the return data must be at least one
    word long: a call to an address without code returns nothing and is never valid."""
    return len(return_data) >= 32 and return_data[:32] == _MAGIC_WORD
