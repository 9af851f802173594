"""DID resolution (W3C DID Core §7.1 "DID Resolution") for did:ethr, did:pkh and did:key.

`parse_did` checks the syntax (DID Core §3.1: `did = "did:" method-name ":"
method-specific-id`; the DID here must be a bare DID, not a DID URL with path, query or
fragment); `DidResolver` dispatches by method. did:pkh and did:key resolve without a
network; did:ethr reads the ERC-1056 registry of its chain through a `ChainReader`.

`ChainReader` is the only seam to a chain: three read-only JSON-RPC operations. Any
`web3.AsyncWeb3` plugs in through `Web3ChainReader`; tests wrap readers to count calls.
Every transport failure is raised as `TemporarilyUnavailable` (the server fails closed:
it never skips a check because a chain is unreachable).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from did_auth.did.document import Resolution
from did_auth.did.ethr import EthrDid, EthrResolver, parse_did_ethr
from did_auth.did.key import KeyDid, parse_did_key, resolve_did_key
from did_auth.did.pkh import PkhDid, parse_did_pkh, resolve_did_pkh
from did_auth.errors import DidAuthError, InvalidRequest, TemporarilyUnavailable

if TYPE_CHECKING:
    from did_auth.settings import Settings

__all__ = [
    "BlockId",
    "ChainReader",
    "DidResolver",
    "ParsedDid",
    "Web3ChainReader",
    "parse_did",
]

BlockId = int | Literal["latest"]
ParsedDid = EthrDid | PkhDid | KeyDid

MAX_DID_CHARS = 256


@runtime_checkable
class ChainReader(Protocol):
    """Read-only access to one EVM chain. Implementations raise `TemporarilyUnavailable`
    when the node cannot answer (and only then: a revert is an answer, also raised as
    `TemporarilyUnavailable`, since no decision can be made without the data)."""

    async def block(self, block: BlockId = "latest") -> tuple[int, int]:
        """(number, timestamp) of a block."""
        ...

    async def call(self, to: str | None, data: bytes, block: BlockId = "latest") -> bytes:
        """`eth_call`; `to=None` runs `data` as contract-creation code and returns what it
        RETURNs (a "deployless" read: several views pinned to one block in one call)."""
        ...

    async def logs(
        self, address: str, topics: Sequence[str | None], block: int
    ) -> list[dict[str, Any]]:
        """`eth_getLogs` of `address` in the one block `block` (fromBlock = toBlock), each
        log as a dict with `address`, `topics` (0x-hex), `data` (0x-hex), `blockNumber`,
        `blockHash`, `logIndex` and `removed`."""
        ...


def _hex(v: Any) -> str:
    if isinstance(v, (bytes, bytearray, memoryview)):
        return "0x" + bytes(v).hex()
    return str(v)


def _bytes(v: Any) -> bytes:
    if isinstance(v, (bytes, bytearray, memoryview)):
        return bytes(v)
    if isinstance(v, str) and v.startswith("0x"):
        return bytes.fromhex(v[2:])
    raise ValueError("expected 0x-hex")


class Web3ChainReader:
    """A `ChainReader` over any `web3.AsyncWeb3` (HTTP, WebSocket, IPC, eth-tester).

    `eth_call` goes straight to `w3.provider.make_request`, past web3's middleware, so that
    the pinned read is exactly one JSON-RPC request (web3's validation middleware would add
    `eth_chainId` round trips around it; the chain id is checked inside the pinned read
    instead). Logs and blocks go through web3's API, which knows every provider's formats.
    Importing this module does not import web3.
    """

    def __init__(self, w3: Any, *, timeout: float = 10.0, call_from: str | None = None) -> None:
        """`call_from`: the `from` of `eth_call`s. Nodes need none; eth-tester (the embedded
        chain's `async_w3`) charges gas on calls and needs a funded account (its deployer)."""
        self.w3 = w3
        self.timeout = timeout
        self.call_from = call_from

    async def _guard(self, what: str, coro: Any) -> Any:
        try:
            async with asyncio.timeout(self.timeout):
                return await coro
        except DidAuthError:
            raise
        except Exception as exc:  # transport, JSON-RPC and formatting errors alike
            raise TemporarilyUnavailable(
                f"chain read failed ({what}: {type(exc).__name__})", reason="chain_unavailable"
            ) from exc

    async def block(self, block: BlockId = "latest") -> tuple[int, int]:
        b = await self._guard("eth_getBlockByNumber", self.w3.eth.get_block(block))
        return int(b["number"]), int(b["timestamp"])

    async def call(self, to: str | None, data: bytes, block: BlockId = "latest") -> bytes:
        tx: dict[str, Any] = {"data": "0x" + data.hex()}
        if self.call_from is not None:
            tx["from"] = self.call_from
        if to is not None:
            tx["to"] = to
        tag = block if isinstance(block, str) else hex(block)
        reply = await self._guard("eth_call", self.w3.provider.make_request("eth_call", [tx, tag]))
        if not isinstance(reply, Mapping) or reply.get("error") is not None:
            # A JSON-RPC error, a revert included: no decision can be made without the data.
            raise TemporarilyUnavailable(
                "chain read failed (eth_call: JSON-RPC error)", reason="chain_unavailable"
            )
        try:
            return _bytes(reply.get("result"))
        except (TypeError, ValueError):
            raise TemporarilyUnavailable(
                "chain read failed (eth_call: malformed)", reason="chain_unavailable"
            ) from None

    async def logs(
        self, address: str, topics: Sequence[str | None], block: int
    ) -> list[dict[str, Any]]:
        params = {"address": address, "topics": list(topics), "fromBlock": block, "toBlock": block}
        raw = await self._guard("eth_getLogs", self.w3.eth.get_logs(params))
        try:
            return [
                {
                    "address": str(log["address"]),
                    "topics": [_hex(t) for t in log["topics"]],
                    "data": _hex(log["data"]),
                    "blockNumber": int(log["blockNumber"]),
                    "blockHash": _hex(log.get("blockHash") or b""),
                    "logIndex": int(log.get("logIndex") or 0),
                    "removed": bool(log.get("removed", False)),
                }
                for log in raw
            ]
        except (KeyError, TypeError, ValueError):
            raise TemporarilyUnavailable(
                "chain read failed (eth_getLogs: malformed)", reason="chain_unavailable"
            ) from None


def parse_did(did: object) -> ParsedDid:
    """Syntax check of a bare DID of a supported method; raises InvalidRequest."""
    if not isinstance(did, str) or not did:
        raise InvalidRequest("did is required", reason="did_syntax")
    if len(did) > MAX_DID_CHARS:
        raise InvalidRequest("did is too long", reason="did_syntax")
    if any(c in did for c in "/?#"):
        raise InvalidRequest("a bare DID is required, not a DID URL", reason="did_syntax")
    if did.startswith("did:ethr:"):
        return parse_did_ethr(did)
    if did.startswith("did:pkh:"):
        return parse_did_pkh(did)
    if did.startswith("did:key:"):
        return parse_did_key(did)
    raise InvalidRequest(
        "unsupported DID method (supported: did:ethr, did:pkh, did:key)", reason="did_method"
    )


class DidResolver:
    """Dispatch by method. `ethr` maps chain ids to the resolver of that chain's registry."""

    def __init__(self, ethr: Mapping[int, EthrResolver] | None = None) -> None:
        self.ethr: dict[int, EthrResolver] = dict(ethr or {})

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        readers: Mapping[int, ChainReader],
        registries: Mapping[int, str] | None = None,
        **kw: Any,
    ) -> DidResolver:
        """One `EthrResolver` per `[[chains]]` entry that has a reader and an ERC-1056
        registry: its `did_registry`, or the address in `registries` (e.g. the registry an
        embedded chain deployed at start-up), which wins when both are given."""
        resolver = cls()
        extra = dict(registries or {})
        for c in settings.chains:
            registry = extra.get(c.chain_id) or c.did_registry
            if registry and c.chain_id in readers:
                resolver.add_ethr(c.chain_id, registry, readers[c.chain_id], **kw)
        return resolver

    def add_ethr(
        self, chain_id: int, registry: str, reader: ChainReader, **kw: Any
    ) -> EthrResolver:
        """Serve did:ethr DIDs of `chain_id` from the ERC-1056 `registry` through `reader`
        (for registries known only once a chain has started)."""
        ethr = EthrResolver(chain_id=chain_id, registry=registry, reader=reader, **kw)
        self.ethr[chain_id] = ethr
        return ethr

    def parse(self, did: object) -> ParsedDid:
        """`parse_did`, plus: a did:ethr's chain must have a configured registry."""
        parsed = parse_did(did)
        if isinstance(parsed, EthrDid) and parsed.chain_id not in self.ethr:
            raise InvalidRequest(
                f"did:ethr on chain {parsed.chain_id} is not supported here: the chain has no "
                "configured ERC-1056 registry",
                reason="did_chain",
            )
        return parsed

    async def resolve(self, did: str | ParsedDid, *, now: float | None = None) -> Resolution:
        parsed = self.parse(did) if isinstance(did, str) else did
        if isinstance(parsed, EthrDid):
            resolver = self.ethr.get(parsed.chain_id)
            if resolver is None:
                raise InvalidRequest("did:ethr chain is not configured", reason="did_chain")
            return await resolver.resolve(parsed, now=now)
        if isinstance(parsed, PkhDid):
            return resolve_did_pkh(parsed)
        return resolve_did_key(parsed)
