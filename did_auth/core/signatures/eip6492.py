"""EIP-6492 (signature validation for predeploy contracts): wrapped signatures.

A counterfactual (not yet deployed) contract wallet signs with
`abi.encode(address factory, bytes factoryCalldata, bytes innerSignature) ++ MAGIC`, where
MAGIC is 32 bytes of 0x6492 repeated. EIP-6492 §Verifier side: a verifier MUST check for the
magic suffix first and, when present, deploy the wallet (in a simulation) with the factory
call and then ask it through EIP-1271; `did_auth.adapters.chain.wallet_signatures` does this
with the deployless `ValidateSigOffchain` contract in one `eth_call`.
"""

from __future__ import annotations

from typing import Final

from eth_abi.abi import decode, encode

__all__ = ["MAGIC_SUFFIX", "is_wrapped", "unwrap", "wrap"]

MAGIC_SUFFIX: Final = bytes.fromhex("6492" * 16)


def is_wrapped(signature: bytes) -> bool:
    """Whether `signature` ends with the EIP-6492 magic suffix."""
    return len(signature) >= 32 and signature[-32:] == MAGIC_SUFFIX


def wrap(factory: str, factory_calldata: bytes, inner_signature: bytes) -> bytes:
    """The EIP-6492 signature of a counterfactual wallet deployed by `factory_calldata`."""
    return encode(["address", "bytes", "bytes"], [factory, factory_calldata, inner_signature]) + (
        MAGIC_SUFFIX
    )


def unwrap(signature: bytes) -> tuple[str, bytes, bytes]:
    """(factory, factory calldata, inner signature) of a wrapped signature; ValueError if the
    signature is not wrapped or its body is not the ABI encoding EIP-6492 prescribes."""
    if not is_wrapped(signature):
        raise ValueError("not an EIP-6492 signature")
    try:
        factory, calldata, inner = decode(["address", "bytes", "bytes"], signature[:-32])
    except Exception as exc:  # eth_abi raises several unrelated types
        raise ValueError("malformed EIP-6492 signature") from exc
    return str(factory), bytes(calldata), bytes(inner)
