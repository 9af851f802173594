"""Who may have signed: the seam between proof checks and the chain layer."""

from __future__ import annotations

from typing import Protocol, TypedDict, Unpack

from did_auth.errors import InvalidGrant
from did_auth.signatures.eip191 import recover_personal

__all__ = ["EoaSignatureChecker", "SignatureChecker", "SignedMessage"]


class SignedMessage(TypedDict):
    """What a signature check is about: `signature` over `message` (EIP-191), claimed to
    be by `address` on `chain_id`."""

    chain_id: int
    address: str
    message: bytes
    signature: bytes


class SignatureChecker(Protocol):
    async def check(self, *, source: str | None = None, **signed: Unpack[SignedMessage]) -> None:
        """Return when `signature` is `address`'s EIP-191 signature of `message` on `chain_id`
        (EOA, EIP-1271 or EIP-6492); raise InvalidGrant otherwise. `source` (the client IP)
        lets a checker limit the costly checks one source runs at once (RateLimited)."""
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
