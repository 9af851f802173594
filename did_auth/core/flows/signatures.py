"""Who may have signed: the seam between proof checks and the chain layer.

Two questions, one chain layer: `check` is about an EIP-191 message (a SIWE login, an OTP
re-enrolment), `check_digest` about a 32-byte digest the wallet signed as is (an EIP-712
typed-data hash: a withdrawal approval). Both accept the same signatures: EOA (recovery,
low-s), EIP-1271 and EIP-6492 contract wallets."""

from __future__ import annotations

from typing import Protocol, TypedDict, Unpack

from did_auth.core.errors import InvalidGrant
from did_auth.core.signatures.eip191 import recover_digest_raw, recover_personal

__all__ = ["EoaSignatureChecker", "SignatureChecker", "SignedDigest", "SignedMessage"]


class SignedMessage(TypedDict):
    """What a signature check is about: `signature` over `message` (EIP-191), claimed to
    be by `address` on `chain_id`."""

    chain_id: int
    address: str
    message: bytes
    signature: bytes


class SignedDigest(TypedDict):
    """`signature` over the 32-byte `digest` itself (EIP-712: keccak256("\\x19\\x01" ‖
    domainSeparator ‖ hashStruct(message))), claimed to be by `address` on `chain_id`."""

    chain_id: int
    address: str
    digest: bytes
    signature: bytes


class SignatureChecker(Protocol):
    async def check(self, *, source: str | None = None, **signed: Unpack[SignedMessage]) -> None:
        """Return when `signature` is `address`'s EIP-191 signature of `message` on `chain_id`
        (EOA, EIP-1271 or EIP-6492); raise InvalidGrant otherwise. `source` (the client IP)
        lets a checker limit the costly checks one source runs at once (RateLimited)."""
        ...

    async def check_digest(
        self, *, source: str | None = None, **signed: Unpack[SignedDigest]
    ) -> None:
        """As `check`, for a signature of the 32-byte `digest` (no EIP-191 prefix added):
        an EOA's recovery, EIP-1271 `isValidSignature(digest, signature)`, EIP-6492."""
        ...


class EoaSignatureChecker:
    """Plain accounts only: EIP-191 recovery, no chain access."""

    async def check(self, *, source: str | None = None, **signed: Unpack[SignedMessage]) -> None:
        signature = signed["signature"]
        if len(signature) != 65:
            raise InvalidGrant(
                "contract-wallet signatures need the message's chain to be configured",
                reason="signature_shape",
            )
        if recover_personal(signed["message"], signature) != signed["address"]:
            raise InvalidGrant("signature does not match the message's address", reason="signature")

    async def check_digest(
        self, *, source: str | None = None, **signed: Unpack[SignedDigest]
    ) -> None:
        signature = signed["signature"]
        if len(signature) != 65:
            raise InvalidGrant(
                "contract-wallet signatures need the account's chain to be configured",
                reason="signature_shape",
            )
        signer = recover_digest_raw(signed["digest"], signature)
        if "0x" + signer.hex() != signed["address"].lower():
            raise InvalidGrant("signature does not match the account", reason="signature")
