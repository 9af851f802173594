"""did:ethr: DID documents read from the ERC-1056 EthereumDIDRegistry.

Spec: the did:ethr method specification (decentralized-identity/ethr-did-resolver
`doc/did-method-spec.md`) and ERC-1056 ("Ethereum Lightweight Identity"). The document is
built exactly as the reference resolver (npm `ethr-did-resolver`, `resolver.ts`) builds it, so
both produce equal documents for the same registry state; `tests/did/interop` checks that.

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

import base64
import json
import math
import re
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Final

from coincurve import PublicKey

from did_auth.did.document import (
    DidDocument,
    Resolution,
    Service,
    VerificationMethod,
)
from did_auth.did.key import b58encode
from did_auth.errors import AccessDenied, InvalidRequest, TemporarilyUnavailable
from did_auth.signatures.eip191 import is_checksum_address, keccak256, to_checksum_address

if TYPE_CHECKING:
    from did_auth.did.resolver import ChainReader

__all__ = [
    "NETWORKS",
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

#: Network names the reference resolver knows (its `deployments` table), plus `goerli`,
#: which the spec's ABNF names. Any other chain is written as its hex chain id.
NETWORKS: Final[dict[str, int]] = {
    "mainnet": 1,
    "goerli": 5,
    "sepolia": 11155111,
    "holesky": 17000,
    "gno": 100,
    "ewc": 246,
    "volta": 73799,
    "artis:tau1": 246785,
    "artis:sigma1": 246529,
    "polygon": 137,
    "polygon:test": 80001,
    "aurora": 1313161554,
    "linea:goerli": 59140,
}

ZERO_ADDRESS: Final = "0x" + "00" * 20
_ID_RE: Final = re.compile(r"0x(?:[0-9a-fA-F]{40}|[0-9a-fA-F]{66})")
_HEX_CHAIN_RE: Final = re.compile(r"0x[1-9a-f][0-9a-f]{0,15}")
_MAX_DID_CHARS: Final = 256

# Verification method types (reference `verificationMethodTypes`).
RECOVERY_2020: Final = "EcdsaSecp256k1RecoveryMethod2020"
SECP256K1_2019: Final = "EcdsaSecp256k1VerificationKey2019"
# did/pub/<alg>/<purpose>: purpose short names and the legacy type names they expand to.
_LEGACY_ATTR_TYPES: Final = {
    "sigAuth": "SignatureAuthentication2018",
    "veriKey": "VerificationKey2018",
    "enc": "KeyAgreementKey2019",
}
_LEGACY_ALGO_MAP: Final = {
    "Secp256k1VerificationKey2018": SECP256K1_2019,
    "Ed25519SignatureAuthentication2018": "Ed25519VerificationKey2018",
    "Secp256k1SignatureAuthentication2018": SECP256K1_2019,
    "RSAVerificationKey2018": "RSAVerificationKey2018",
    "Ed25519VerificationKey2018": "Ed25519VerificationKey2018",
    "X25519KeyAgreementKey2019": "X25519KeyAgreementKey2019",
}
# JavaScript's \w (no `u` flag) is ASCII; fullmatch plays the part of ^...$.
_ATTR_RE: Final = re.compile(r"did/(pub|svc)/(\w+)(/(\w+))?(/(\w+))?", re.ASCII)

# Event topics and registry selectors.
_OWNER_TOPIC: Final = keccak256(b"DIDOwnerChanged(address,address,uint256)")
_DELEGATE_TOPIC: Final = keccak256(b"DIDDelegateChanged(address,bytes32,address,uint256,uint256)")
_ATTRIBUTE_TOPIC: Final = keccak256(b"DIDAttributeChanged(address,bytes32,bytes,uint256,uint256)")
_CHANGED_SELECTOR: Final = keccak256(b"changed(address)")[:4]
_OWNER_SELECTOR: Final = keccak256(b"identityOwner(address)")[:4]


# --------------------------------------------------------------------------- identifiers


@dataclass(frozen=True, slots=True)
class EthrDid:
    did: str
    network: str  # as written; "" when the DID names none (mainnet)
    chain_id: int
    address: str  # the identity, EIP-55
    public_key: str | None  # the identifier when it is a public key, exactly as written


def _checked_address(text: str) -> str:
    """ethers `getAddress` semantics: a mixed-case address must be a valid EIP-55 checksum;
    all lower or all upper case is accepted as is."""
    body = text[2:]
    mixed = body != body.lower() and body != body.upper()
    if mixed and not is_checksum_address(text):
        raise InvalidRequest("did:ethr address has a wrong EIP-55 checksum", reason="did_syntax")
    return to_checksum_address("0x" + body.lower())


def _address_of_public_key(public_key: bytes) -> str:
    return to_checksum_address(keccak256(PublicKey(public_key).format(compressed=False)[1:])[-20:])


def parse_did_ethr(did: str) -> EthrDid:
    """Parse a bare did:ethr (no path, query or fragment). Raises InvalidRequest."""
    if not did.startswith("did:ethr:") or len(did) > _MAX_DID_CHARS:
        raise InvalidRequest("not a did:ethr", reason="did_syntax")
    parts = did[len("did:ethr:") :].split(":")
    ident, network = parts[-1], ":".join(parts[:-1])
    if _ID_RE.fullmatch(ident) is None:
        raise InvalidRequest(
            "did:ethr identifier must be 0x + 40 hex digits (address) or 0x + 66 (public key)",
            reason="did_syntax",
        )
    if network == "":
        chain_id = NETWORKS["mainnet"]
    elif network in NETWORKS:
        chain_id = NETWORKS[network]
    elif _HEX_CHAIN_RE.fullmatch(network):
        # The reference resolver looks networks up by `0x${chainId.toString(16)}`: lower
        # case, no leading zeros. Other spellings would be aliases it cannot resolve.
        chain_id = int(network, 16)
    else:
        raise InvalidRequest(f"unknown did:ethr network {network!r}", reason="did_network")
    public_key: str | None = None
    if len(ident) == 68:
        # Spec: a public-key-hex identifier "MUST be represented in compressed form".
        raw = bytes.fromhex(ident[2:])
        if raw[0] not in (2, 3):
            raise InvalidRequest("did:ethr public key must be compressed", reason="did_syntax")
        try:
            address = _address_of_public_key(raw)
        except ValueError:
            raise InvalidRequest(
                "did:ethr public key is not a secp256k1 point", reason="did_syntax"
            ) from None
        public_key = ident
    else:
        address = _checked_address(ident)
    return EthrDid(
        did=did, network=network, chain_id=chain_id, address=address, public_key=public_key
    )


# --------------------------------------------------------------------------- events


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


def _hex_bytes(v: Any) -> bytes:
    if isinstance(v, (bytes, bytearray, memoryview)):
        return bytes(v)
    if isinstance(v, str) and v.startswith("0x"):
        return bytes.fromhex(v[2:])
    raise ValueError("expected 0x-hex or bytes")


def _int(v: Any) -> int:
    if isinstance(v, bool):
        raise ValueError("expected an integer")
    if isinstance(v, int):
        return v
    if isinstance(v, str) and v.startswith("0x"):
        return int(v, 16)
    raise ValueError("expected an integer")


def _word_address(word: bytes) -> str:
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
    if _int(log.get("blockNumber")) != block:
        raise ValueError("log from another block")
    topics = [_hex_bytes(t) for t in log.get("topics", ())]
    if len(topics) != 2 or topics[1] != bytes(12) + bytes.fromhex(identity[2:]):
        if topics and topics[0] in (_OWNER_TOPIC, _DELEGATE_TOPIC, _ATTRIBUTE_TOPIC):
            raise ValueError("log for another identity")
        return None
    data = _hex_bytes(log.get("data", "0x"))
    words = [data[i : i + 32] for i in range(0, len(data), 32)]
    if topics[0] == _OWNER_TOPIC:
        if len(data) != 64:
            raise ValueError("malformed DIDOwnerChanged")
        return OwnerChanged(
            block=block,
            previous_change=int.from_bytes(words[1], "big"),
            owner=_word_address(words[0]),
        )
    if topics[0] == _DELEGATE_TOPIC:
        if len(data) != 128:
            raise ValueError("malformed DIDDelegateChanged")
        return DelegateChanged(
            block=block,
            previous_change=int.from_bytes(words[3], "big"),
            delegate_type=_bytes32_string(words[0]),
            delegate=_word_address(words[1]),
            valid_to=int.from_bytes(words[2], "big"),
        )
    if topics[0] == _ATTRIBUTE_TOPIC:
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


# --------------------------------------------------------------------------- documents


@dataclass(frozen=True, slots=True)
class EthrState:
    document: DidDocument
    deactivated: bool
    controller: str  # EIP-55; the zero address when deactivated
    version_id: int
    history_keys: tuple[VerificationMethod, ...]


def _account(chain_id: int, address: str) -> str:
    return f"eip155:{chain_id}:{address}"


def _attribute_key(
    did: str, vm_id: str, algorithm: str, purpose: str | None, encoding: str | None, value: bytes
) -> VerificationMethod:
    """A `did/pub/<algorithm>/<purpose>/<encoding>` attribute as a verification method."""
    legacy = f"{algorithm}{_LEGACY_ATTR_TYPES.get(purpose, purpose)}" if purpose else algorithm
    vm_type = _LEGACY_ALGO_MAP.get(legacy, algorithm)
    fields: dict[str, Any] = {}
    if encoding in (None, "hex"):
        fields["public_key_hex"] = value.hex()
    elif encoding == "base64":
        fields["public_key_base64"] = base64.b64encode(value).decode()
    elif encoding == "base58":
        fields["public_key_base58"] = b58encode(value)
    elif encoding == "pem":
        fields["public_key_pem"] = value.decode("utf-8")
    else:
        fields["value"] = value.hex()
    return VerificationMethod(id=vm_id, type=vm_type, controller=did, delegate=True, **fields)


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")  # JSON.parse rejects NaN / Infinity


def _service_endpoint(value: bytes) -> Any:
    text = value.decode("utf-8")
    try:
        return json.loads(text, parse_constant=_no_constants)
    except ValueError:
        return text


def build_document(
    did: str,
    address: str,
    controller_key: str | None,
    history: Sequence[Event],
    chain_id: int,
    now: int,
) -> EthrState:
    """The document for `history` (oldest first) with validity judged at `now` (seconds).

    Mirrors the reference resolver's `wrapDidDocument`, including its numbering
    (`#delegate-N` counts every delegate and `did/pub` event, `#service-N` every `did/svc`
    event) and ordering (a key re-added after its removal moves to the end). Raises
    ValueError for attribute values the reference cannot decode either (bad UTF-8).
    """
    controller = address
    deactivated = False
    delegate_count = 0
    service_count = 0
    version_id = 0
    auth: dict[tuple[str, str, str], str] = {}
    key_agreement: dict[tuple[str, str, str], str] = {}
    signing: dict[tuple[str, str, str], str] = {}
    pks: dict[tuple[str, str, str], VerificationMethod] = {}
    services: dict[tuple[str, str, str], Service] = {}
    known: list[VerificationMethod] = []

    def history_key(**fields: Any) -> None:
        known.append(
            VerificationMethod(
                id=f"{did}#history-{len(known) + 1}",
                type=fields.pop("type", RECOVERY_2020),
                controller=did,
                delegate=True,
                **fields,
            )
        )

    history_key(blockchain_account_id=_account(chain_id, address))
    if controller_key is not None:
        history_key(type=SECP256K1_2019, public_key_hex=controller_key[2:])

    for event in history:
        version_id = max(version_id, event.block)
        if isinstance(event, OwnerChanged):
            controller = event.owner
            if event.owner == ZERO_ADDRESS:
                deactivated = True
                break
            history_key(blockchain_account_id=_account(chain_id, event.owner))
            continue
        if isinstance(event, DelegateChanged):
            index = ("DIDDelegateChanged", event.delegate_type or "undefined", event.delegate)
            history_key(blockchain_account_id=_account(chain_id, event.delegate))
        else:
            index = ("DIDAttributeChanged", event.name, "0x" + event.value.hex())
        if event.valid_to and event.valid_to >= now:
            if isinstance(event, DelegateChanged):
                delegate_count += 1
                vm_id = f"{did}#delegate-{delegate_count}"
                if event.delegate_type in ("sigAuth", "veriKey"):
                    if event.delegate_type == "sigAuth":
                        auth[index] = vm_id
                    pks[index] = VerificationMethod(
                        id=vm_id,
                        type=RECOVERY_2020,
                        controller=did,
                        blockchain_account_id=_account(chain_id, event.delegate),
                        valid_to=event.valid_to,
                        delegate=True,
                    )
                    signing[index] = vm_id
                continue
            m = _ATTR_RE.fullmatch(event.name)
            if m is None:
                continue
            section, algorithm, purpose, encoding = m.group(1), m.group(2), m.group(4), m.group(6)
            if section == "pub":
                delegate_count += 1
                vm_id = f"{did}#delegate-{delegate_count}"
                pk = replace(
                    _attribute_key(did, vm_id, algorithm, purpose, encoding, event.value),
                    valid_to=event.valid_to,
                )
                pks[index] = pk
                if purpose == "sigAuth":
                    auth[index] = vm_id
                    signing[index] = vm_id
                elif purpose == "enc":
                    key_agreement[index] = vm_id
                else:
                    signing[index] = vm_id
                history_key(**_key_fields(pk))
            else:
                service_count += 1
                services[index] = Service(
                    id=f"{did}#service-{service_count}",
                    type=algorithm,
                    service_endpoint=_service_endpoint(event.value),
                )
        else:
            if isinstance(event, DelegateChanged) or event.name.startswith("did/pub/"):
                delegate_count += 1
                m = _ATTR_RE.fullmatch(event.name) if isinstance(event, AttributeChanged) else None
                if m is not None and isinstance(event, AttributeChanged):
                    try:
                        pk = _attribute_key(
                            did, "", m.group(2), m.group(4), m.group(6), event.value
                        )
                    except ValueError:  # a revoked key the reference never decodes
                        pass
                    else:
                        history_key(**_key_fields(pk))
            elif event.name.startswith("did/svc/"):
                service_count += 1
            auth.pop(index, None)
            signing.pop(index, None)
            pks.pop(index, None)
            services.pop(index, None)

    keys = tuple(known)
    if deactivated:
        return EthrState(
            document=DidDocument(id=did),
            deactivated=True,
            controller=ZERO_ADDRESS,
            version_id=version_id,
            history_keys=keys,
        )
    methods = [
        VerificationMethod(
            id=f"{did}#controller",
            type=RECOVERY_2020,
            controller=did,
            blockchain_account_id=_account(chain_id, controller),
        )
    ]
    authentication = [f"{did}#controller"]
    assertion = [f"{did}#controller"]
    if controller_key is not None and controller == address:
        methods.append(
            VerificationMethod(
                id=f"{did}#controllerKey",
                type=SECP256K1_2019,
                controller=did,
                public_key_hex=controller_key[2:],
            )
        )
        authentication.append(f"{did}#controllerKey")
        assertion.append(f"{did}#controllerKey")
    doc = DidDocument(
        id=did,
        verification_method=(*methods, *pks.values()),
        authentication=(*authentication, *auth.values()),
        assertion_method=(*assertion, *signing.values()),
        key_agreement=tuple(key_agreement.values()) or None,
        service=tuple(services.values()) or None,
    )
    return EthrState(
        document=doc,
        deactivated=False,
        controller=controller,
        version_id=version_id,
        history_keys=keys,
    )


def _key_fields(m: VerificationMethod) -> dict[str, Any]:
    names = (
        "blockchain_account_id",
        "ethereum_address",
        "public_key_hex",
        "public_key_base64",
        "public_key_base58",
        "public_key_pem",
        "public_key_multibase",
        "value",
    )
    out: dict[str, Any] = {n: getattr(m, n) for n in names if getattr(m, n) is not None}
    if m.type:
        out["type"] = m.type
    return out


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
        owner=_word_address(w[4]),
        changed_hash=w[5],
    )


class EthrResolver:
    """Resolves did:ethr identities of one chain from its ERC-1056 registry.

    `reader` is any `ChainReader` (see `did_auth.did.resolver`). Histories are cached (LRU,
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
                        if _hex_bytes(log.get("blockHash")) != snap.changed_hash:
                            raise ValueError("log from another fork")
                    ev = decode_log(log, registry=self.registry, identity=identity, block=block)
                    if ev is not None:
                        events.append((_int(log.get("logIndex", 0)), ev))
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
