"""Decoding of the revocation-relevant registry events: `RevocationRegistry` (`Revoked`,
`RevokedAll`, `Suspended`, `Unsuspended`) and ERC-1056 (`DIDOwnerChanged`,
`DIDDelegateChanged`), from `eth_getLogs` entries into `ChainEvent`s. Decoding only: what an
event ends is decided by `did_auth.core.flows.revocations.RevocationBook`."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from did_auth.core.did.ethr_events import DELEGATE_TOPIC as TOPIC_DELEGATE
from did_auth.core.did.ethr_events import OWNER_TOPIC as TOPIC_OWNER
from did_auth.core.signatures.eip191 import keccak256

__all__ = [
    "TOPIC_DELEGATE",
    "TOPIC_OWNER",
    "TOPIC_REVOKED",
    "TOPIC_REVOKED_ALL",
    "TOPIC_SUSPENDED",
    "TOPIC_UNSUSPENDED",
    "ChainEvent",
    "address_word",
    "as_bytes",
    "as_hex",
    "decode_event",
]

log = logging.getLogger("did_auth.adapters.chain.watcher")

TOPIC_REVOKED: Final = keccak256(b"Revoked(address,bytes32,address)")
TOPIC_REVOKED_ALL: Final = keccak256(b"RevokedAll(address,uint256)")
TOPIC_SUSPENDED: Final = keccak256(b"Suspended(address,address)")
TOPIC_UNSUSPENDED: Final = keccak256(b"Unsuspended(address,address)")
_SIG_AUTH: Final = b"sigAuth".ljust(32, b"\x00")


def as_bytes(value: Any) -> bytes:
    if isinstance(value, str):
        return bytes.fromhex(value[2:] if value.startswith("0x") else value)
    return bytes(value)


def as_hex(value: Any) -> str:
    return "0x" + as_bytes(value).hex()


def address_word(word: bytes) -> str:
    return "0x" + word[-20:].hex()


@dataclass(frozen=True, slots=True)
class ChainEvent:
    """One decoded registry event (addresses lower-case, ids 0x-hex)."""

    kind: str  # revoked | revoked_all | suspended | unsuspended | delegate | owner
    block: int
    log_index: int
    tx_hash: str
    account: str  # the account (RevocationRegistry) or the identity (ERC-1056)
    id: str | None = None
    before: int | None = None
    delegate: str | None = None
    sig_auth: bool = False
    valid_to: int | None = None
    owner: str | None = None


def decode_event(
    log_entry: Mapping[str, Any], *, revocation_registry: str | None, did_registry: str | None
) -> ChainEvent | None:
    """Decode one `eth_getLogs` entry of either registry; None for anything else."""
    if log_entry.get("removed"):
        return None
    address = str(log_entry.get("address", "")).lower()
    try:
        topics = [as_bytes(t) for t in log_entry.get("topics") or []]
        data = as_bytes(log_entry.get("data") or b"")
        block = int(log_entry["blockNumber"])
        index = int(log_entry.get("logIndex") or 0)
        tx = as_hex(log_entry.get("transactionHash") or b"")
    except (KeyError, ValueError, TypeError):
        log.warning("undecodable registry log")
        return None
    if not topics:
        return None
    t0, n = topics[0], len(topics)
    if revocation_registry is not None and address == revocation_registry.lower():
        if t0 == TOPIC_REVOKED and n >= 3:
            return ChainEvent(
                "revoked", block, index, tx, address_word(topics[1]), id=as_hex(topics[2])
            )
        if t0 == TOPIC_REVOKED_ALL and n >= 2 and len(data) >= 32:
            before = int.from_bytes(data[:32], "big")
            return ChainEvent(
                "revoked_all", block, index, tx, address_word(topics[1]), before=before
            )
        if t0 == TOPIC_SUSPENDED and n >= 2:
            return ChainEvent("suspended", block, index, tx, address_word(topics[1]))
        if t0 == TOPIC_UNSUSPENDED and n >= 2:
            return ChainEvent("unsuspended", block, index, tx, address_word(topics[1]))
    if did_registry is not None and address == did_registry.lower():
        if t0 == TOPIC_DELEGATE and n >= 2 and len(data) >= 128:
            return ChainEvent(
                "delegate",
                block,
                index,
                tx,
                address_word(topics[1]),
                sig_auth=data[:32] == _SIG_AUTH,
                delegate=address_word(data[32:64]),
                valid_to=int.from_bytes(data[64:96], "big"),
            )
        if t0 == TOPIC_OWNER and n >= 2 and len(data) >= 64:
            return ChainEvent(
                "owner", block, index, tx, address_word(topics[1]), owner=address_word(data[:32])
            )
    return None
