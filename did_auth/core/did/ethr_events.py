"""ERC-1056 registry events of one identity (`DIDOwnerChanged`, `DIDDelegateChanged`,
`DIDAttributeChanged`), decoded strictly from `eth_getLogs` entries; each carries the
`previousChange` block the did:ethr resolver walks back through."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from did_auth.core.signatures.eip191 import keccak256, to_checksum_address

__all__ = [
    "ATTRIBUTE_TOPIC",
    "DELEGATE_TOPIC",
    "OWNER_TOPIC",
    "AttributeChanged",
    "DelegateChanged",
    "Event",
    "OwnerChanged",
    "decode_log",
    "hex_bytes",
    "int_value",
    "word_address",
]

# Event topics (topic 0 of each registry event).
OWNER_TOPIC: Final = keccak256(b"DIDOwnerChanged(address,address,uint256)")
DELEGATE_TOPIC: Final = keccak256(b"DIDDelegateChanged(address,bytes32,address,uint256,uint256)")
ATTRIBUTE_TOPIC: Final = keccak256(b"DIDAttributeChanged(address,bytes32,bytes,uint256,uint256)")


@dataclass(frozen=True, slots=True)
class OwnerChanged:
    block: int
    previous_change: int
    owner: str  # EIP-55


@dataclass(frozen=True, slots=True)
class DelegateChanged:
    block: int
    previous_change: int
    delegate_type: str
    delegate: str  # EIP-55
    valid_to: int


@dataclass(frozen=True, slots=True)
class AttributeChanged:
    block: int
    previous_change: int
    name: str
    value: bytes
    valid_to: int


Event = OwnerChanged | DelegateChanged | AttributeChanged


def hex_bytes(v: Any) -> bytes:
    if isinstance(v, (bytes, bytearray, memoryview)):
        return bytes(v)
    if isinstance(v, str) and v.startswith("0x"):
        return bytes.fromhex(v[2:])
    raise ValueError("expected 0x-hex or bytes")


def int_value(v: Any) -> int:
    if isinstance(v, bool):
        raise ValueError("expected an integer")
    if isinstance(v, int):
        return v
    if isinstance(v, str) and v.startswith("0x"):
        return int(v, 16)
    raise ValueError("expected an integer")


def word_address(word: bytes) -> str:
    if any(word[:12]):
        raise ValueError("address word has non-zero high bytes")
    return to_checksum_address(word[12:])


def _bytes32_string(word: bytes) -> str:
    """bytes32 → text as the reference does: UTF-8 (strict), trailing NULs removed."""
    return word.decode("utf-8").rstrip("\0")


def decode_log(log: Mapping[str, Any], *, registry: str, identity: str, block: int) -> Event | None:
    """One registry log → event. None for a log of another event type; ValueError when the
    log is not what was asked for (another contract, identity or block) or is malformed."""
    address = str(log.get("address", ""))
    if address.lower() != registry.lower():
        raise ValueError("log from another contract")
    if log.get("removed"):
        raise ValueError("log was removed by a reorganisation")
    if int_value(log.get("blockNumber")) != block:
        raise ValueError("log from another block")
    topics = [hex_bytes(t) for t in log.get("topics", ())]
    if len(topics) != 2 or topics[1] != bytes(12) + bytes.fromhex(identity[2:]):
        if topics and topics[0] in (OWNER_TOPIC, DELEGATE_TOPIC, ATTRIBUTE_TOPIC):
            raise ValueError("log for another identity")
        return None
    data = hex_bytes(log.get("data", "0x"))
    words = [data[i : i + 32] for i in range(0, len(data), 32)]
    if topics[0] == OWNER_TOPIC:
        if len(data) != 64:
            raise ValueError("malformed DIDOwnerChanged")
        return OwnerChanged(
            block=block,
            previous_change=int.from_bytes(words[1], "big"),
            owner=word_address(words[0]),
        )
    if topics[0] == DELEGATE_TOPIC:
        if len(data) != 128:
            raise ValueError("malformed DIDDelegateChanged")
        return DelegateChanged(
            block=block,
            previous_change=int.from_bytes(words[3], "big"),
            delegate_type=_bytes32_string(words[0]),
            delegate=word_address(words[1]),
            valid_to=int.from_bytes(words[2], "big"),
        )
    if topics[0] == ATTRIBUTE_TOPIC:
        # (bytes32 name, bytes value, uint validTo, uint previousChange): head of 4 words,
        # `value` at offset 0x80 as length + right-padded bytes (strict ABI encoding).
        if len(data) < 160 or len(data) % 32 or int.from_bytes(words[1], "big") != 128:
            raise ValueError("malformed DIDAttributeChanged")
        length = int.from_bytes(words[4], "big")
        padded = (length + 31) // 32 * 32
        if len(data) != 160 + padded or any(data[160 + length :]):
            raise ValueError("malformed DIDAttributeChanged value")
        return AttributeChanged(
            block=block,
            previous_change=int.from_bytes(words[3], "big"),
            name=_bytes32_string(words[0]),
            value=data[160 : 160 + length],
            valid_to=int.from_bytes(words[2], "big"),
        )
    return None
