"""Signature primitives: EIP-191 personal_sign recovery (coincurve) and EIP-55 addresses."""

from did_auth.signatures.eip191 import (
    MAX_SIGNATURE_BYTES,
    SECP256K1_HALF_N,
    SECP256K1_N,
    is_checksum_address,
    keccak256,
    parse_hex_signature,
    personal_message_hash,
    recover_personal,
    recover_personal_raw,
    to_checksum_address,
)

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
