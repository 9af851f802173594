"""did:ethr: DID documents read from the ERC-1056 EthereumDIDRegistry.

Spec: the did:ethr method specification (decentralized-identity/ethr-did-resolver
`doc/did-method-spec.md`) and ERC-1056 ("Ethereum Lightweight Identity"). The document is
built exactly as the reference resolver (npm `ethr-did-resolver`, `resolver.ts`) builds it, so
both produce equal documents for the same registry state; `tests/core/did/interop` checks that.

Identifier (spec §"Method Specific Identifier")::

    ethr-did = "did:ethr:" [ ethr-network ":" ] ( ethereum-address / public-key-hex )
    ethr-network = network name ("mainnet", "sepolia", ...) / "0x" hex chain id
    ethereum-address = "0x" 40HEXDIG        public-key-hex = "0x" 66HEXDIG

No network means mainnet. For a `public-key-hex` identifier "it MUST be represented in
compressed form"; the identity address is derived from it and the key is published as
`#controllerKey` while the identity is its own controller.

Read (spec §"Read (Resolve)"):

1. `changed(identity)` and `identityOwner(identity)` are read in ONE `eth_call` pinned to one
   block: a contract-creation call whose init code STATICCALLs the registry and returns
   `(chainid, number, timestamp, changed, owner, blockhash(changed))`, so the block number,
   its timestamp and the registry state cannot come from different blocks.
2. "Each event contains a `previousChange` value which contains the block number of the
   previous change (if any)": from `changed`, `eth_getLogs` is called for that one block and
   the `previousChange` chain is walked back to 0 (`DIDOwnerChanged`, `DIDDelegateChanged`,
   `DIDAttributeChanged`, topic[1] = identity).
3. Delegates and attribute keys: "Only events with a `validTo` in seconds greater or equal to
   the current time should be included in the DID document." `veriKey` delegates become
   `assertionMethod` keys; `sigAuth` delegates are also `authentication` keys.
   `did/pub/<alg>/<purpose>/<encoding>` attributes add keys (`sigAuth` → authentication,
   `enc` → keyAgreement, else assertionMethod); `did/svc/<type>` adds a service.
4. Delete: "the owner of the smart contract needs to be set to `0x0`": a `DIDOwnerChanged`
   to the zero address deactivates the DID for good (`identityOwner` cannot show this: it
   returns the identity itself for a zero owner, so only the logs tell).

The history of an identity only changes when `changed(identity)` does, so histories are
cached by (chain, registry, identity, changed, blockhash(changed)); with a warm cache one
resolution costs exactly one RPC call, and validity is re-judged at every resolution.

Fail closed: an unreachable node, a registry without code, a chain id other than the
configured one, missing or inconsistent logs (the history's owner must equal
`identityOwner`) raise `TemporarilyUnavailable`, never a document built from partial data.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass
from typing import Final

from did_auth.core.did.chain_reader import ChainReader
from did_auth.core.did.document import Resolution
from did_auth.core.did.ethr_did import NETWORKS, ZERO_ADDRESS, EthrDid, parse_did_ethr
from did_auth.core.did.ethr_document import EthrState, build_document
from did_auth.core.did.ethr_events import (
    AttributeChanged,
    DelegateChanged,
    Event,
    OwnerChanged,
    decode_log,
    hex_bytes,
    int_value,
    word_address,
)
from did_auth.core.errors import AccessDenied, InvalidRequest, TemporarilyUnavailable
from did_auth.core.signatures.eip191 import keccak256, to_checksum_address

__all__ = [
    "NETWORKS",
    "ZERO_ADDRESS",
    "AttributeChanged",
    "DelegateChanged",
    "EthrDid",
    "EthrResolver",
    "EthrState",
    "OwnerChanged",
    "Snapshot",
    "build_document",
    "decode_log",
    "parse_did_ethr",
    "snapshot_code",
]

# Registry selectors of the pinned read.
_CHANGED_SELECTOR: Final = keccak256(b"changed(address)")[:4]
_OWNER_SELECTOR: Final = keccak256(b"identityOwner(address)")[:4]


# --------------------------------------------------------------------------- reading


def _op_push(value: int, size: int) -> bytes:
    return bytes([0x5F + size]) + value.to_bytes(size, "big")


def snapshot_code(registry: str, identity: str) -> bytes:
    """EVM init code for one pinned read; run as an `eth_call` without `to`, it returns
    abi(uint chainid, uint number, uint timestamp, uint changed, address owner,
    bytes32 blockhash(changed)) and reverts unless both registry calls returned 32 bytes.

    Memory: calldata at 0x00..0x24, results at 0x100..0x1c0.
    """
    reg = int(registry, 16)
    ident = int(identity, 16)
    head = b""
    for selector, out in ((_CHANGED_SELECTOR, 0x160), (_OWNER_SELECTOR, 0x180)):
        head += (
            _op_push(int.from_bytes(selector, "big"), 4)
            + _op_push(0xE0, 1)
            + b"\x1b"  # SHL: selector << 224
            + _op_push(0, 1)
            + b"\x52"  # MSTORE at 0
            + _op_push(ident, 20)
            + _op_push(4, 1)
            + b"\x52"  # MSTORE identity at 4 (left-padded word)
            + _op_push(0x20, 1)  # retSize
            + _op_push(out, 2)  # retOffset
            + _op_push(0x24, 1)  # argsSize
            + _op_push(0, 1)  # argsOffset
            + _op_push(reg, 20)
            + b"\x5a"  # GAS
            + b"\xfa"  # STATICCALL -> success
            + b"\x3d"  # RETURNDATASIZE
            + _op_push(0x20, 1)
            + b"\x14"  # EQ
            + b"\x16"  # AND: success && returndatasize == 32
        )
    head += b"\x16"  # AND of both checks
    fail = _op_push(0, 1) + b"\x80" + b"\xfd"  # PUSH1 0, DUP1, REVERT
    dest = len(head) + 3 + 1 + len(fail)  # after PUSH2 dest, JUMPI, fail
    tail = (
        b"\x5b"  # JUMPDEST
        + b"\x46"
        + _op_push(0x100, 2)
        + b"\x52"  # CHAINID
        + b"\x43"
        + _op_push(0x120, 2)
        + b"\x52"  # NUMBER
        + b"\x42"
        + _op_push(0x140, 2)
        + b"\x52"  # TIMESTAMP
        + _op_push(0x160, 2)
        + b"\x51"  # MLOAD changed
        + b"\x40"  # BLOCKHASH
        + _op_push(0x1A0, 2)
        + b"\x52"
        + _op_push(0xC0, 1)
        + _op_push(0x100, 2)
        + b"\xf3"  # RETURN
    )
    return head + _op_push(dest, 2) + b"\x57" + fail + tail


@dataclass(frozen=True, slots=True)
class Snapshot:
    chain_id: int
    block: int
    timestamp: int
    changed: int
    owner: str  # EIP-55, what identityOwner returned
    changed_hash: bytes  # blockhash(changed): zero when unknown (current or > 256 blocks old)


def _parse_snapshot(raw: bytes) -> Snapshot:
    if len(raw) != 192:
        raise ValueError("snapshot call returned the wrong length")
    w = [raw[i : i + 32] for i in range(0, 192, 32)]
    return Snapshot(
        chain_id=int.from_bytes(w[0], "big"),
        block=int.from_bytes(w[1], "big"),
        timestamp=int.from_bytes(w[2], "big"),
        changed=int.from_bytes(w[3], "big"),
        owner=word_address(w[4]),
        changed_hash=w[5],
    )


class EthrResolver:
    """Resolves did:ethr identities of one chain from its ERC-1056 registry.

    `reader` is any `ChainReader` (see `did_auth.core.did.chain_reader`). Histories are cached (LRU,
    `cache_size` identities); `max_changes` bounds the `previousChange` walk.
    """

    def __init__(
        self,
        *,
        chain_id: int,
        registry: str,
        reader: ChainReader,
        cache_size: int = 4096,
        max_changes: int = 1000,
    ) -> None:
        self.chain_id = chain_id
        self.registry = to_checksum_address(registry)
        self.reader = reader
        self._cache: OrderedDict[tuple[str, int, bytes], tuple[Event, ...]] = OrderedDict()
        self._cache_size = cache_size
        self._max_changes = max_changes

    async def snapshot(self, identity: str) -> Snapshot:
        """ONE call: chain id, block, timestamp, changed(identity), identityOwner(identity)."""
        try:
            raw = await self.reader.call(None, snapshot_code(self.registry, identity), "latest")
            snap = _parse_snapshot(raw)
        except ValueError:
            raise TemporarilyUnavailable(
                "the DID registry answered malformed data", reason="did_registry"
            ) from None
        if snap.chain_id != self.chain_id:
            raise TemporarilyUnavailable(
                f"the RPC endpoint for chain {self.chain_id} serves chain {snap.chain_id}",
                reason="chain_mismatch",
            )
        if snap.changed > snap.block:
            raise TemporarilyUnavailable(
                "the DID registry answered inconsistent data", reason="did_registry"
            )
        return snap

    async def history(self, identity: str, snap: Snapshot) -> tuple[Event, ...]:
        """All registry events of `identity` up to `snap`, oldest first (cached)."""
        if snap.changed == 0:
            return ()
        key = (identity.lower(), snap.changed, snap.changed_hash)
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
            return cached
        events = await self._walk(identity, snap)
        # A change in the head block may still be reorganised away while its hash is
        # unknown to BLOCKHASH; cache only changes older than the block we read at.
        if snap.changed < snap.block:
            self._cache[key] = events
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return events

    async def _walk(self, identity: str, snap: Snapshot) -> tuple[Event, ...]:
        topic = "0x" + "00" * 12 + identity[2:].lower()
        blocks: list[list[Event]] = []
        previous = snap.changed
        while previous:
            if len(blocks) >= self._max_changes:
                raise AccessDenied(
                    "the DID's registry history is too long to resolve", reason="did_history"
                )
            block = previous
            logs = await self.reader.logs(self.registry, [None, topic], block)
            events: list[tuple[int, Event]] = []
            try:
                for log in logs:
                    if block == snap.changed and any(snap.changed_hash):
                        if hex_bytes(log.get("blockHash")) != snap.changed_hash:
                            raise ValueError("log from another fork")
                    ev = decode_log(log, registry=self.registry, identity=identity, block=block)
                    if ev is not None:
                        events.append((int_value(log.get("logIndex", 0)), ev))
            except UnicodeDecodeError:
                # A well-formed log whose bytes32 name is not UTF-8: the identity's owner
                # wrote it, and the reference resolver cannot decode it either.
                raise AccessDenied(
                    "the DID's registry history cannot be decoded", reason="did_invalid"
                ) from None
            except (ValueError, TypeError) as exc:
                raise TemporarilyUnavailable(
                    f"the DID registry's logs for block {block} are unusable ({exc})",
                    reason="did_logs",
                ) from None
            if not events:
                # `changed` points here, so the node is missing logs (pruned, or behind):
                # a document built without them could miss a revocation.
                raise TemporarilyUnavailable(
                    f"the RPC node returned no DID registry logs for block {block}",
                    reason="did_logs",
                )
            events.sort(key=lambda p: p[0])
            ordered = [e for _, e in events]
            blocks.append(ordered)
            earlier = [e.previous_change for e in ordered if e.previous_change < block]
            previous = earlier[0] if earlier else 0
        return tuple(e for evs in reversed(blocks) for e in evs)

    async def resolve(self, did: EthrDid, *, now: float | None = None) -> Resolution:
        """The current document. Validity is judged at the read block's timestamp, or at
        `now` when that is later (an idle chain's last block can be old)."""
        if did.chain_id != self.chain_id:
            raise InvalidRequest("did:ethr network does not match this resolver")
        snap = await self.snapshot(did.address)
        events = await self.history(did.address, snap)
        at = snap.timestamp if now is None else max(snap.timestamp, math.floor(now))
        try:
            state = build_document(did.did, did.address, did.public_key, events, self.chain_id, at)
        except (ValueError, UnicodeDecodeError):
            raise AccessDenied(
                "the DID document cannot be built from the registry (undecodable attribute)",
                reason="did_invalid",
            ) from None
        if not state.deactivated and state.controller != snap.owner:
            raise TemporarilyUnavailable(
                "the DID registry's logs disagree with identityOwner", reason="did_logs"
            )
        return Resolution(
            document=state.document,
            deactivated=state.deactivated,
            block=snap.block,
            timestamp=at,
            version_id=state.version_id,
            history_keys=state.history_keys,
        )
