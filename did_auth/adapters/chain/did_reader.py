"""`ChainReader` (the DID resolvers' seam to a chain) over any `web3.AsyncWeb3`."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from did_auth.adapters.chain.registry_events import as_hex
from did_auth.core.did.chain_reader import BlockId
from did_auth.core.did.ethr import EthrResolver
from did_auth.core.did.ethr_events import hex_bytes
from did_auth.core.errors import DidAuthError, TemporarilyUnavailable

if TYPE_CHECKING:
    from did_auth.adapters.chain.client import ChainRegistry

__all__ = ["ChainDidRegistries", "Web3ChainReader"]


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
            return hex_bytes(reply.get("result"))
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
                    "topics": [as_hex(t) for t in log["topics"]],
                    "data": as_hex(log["data"]),
                    "blockNumber": int(log["blockNumber"]),
                    "blockHash": as_hex(log.get("blockHash") or b""),
                    "logIndex": int(log.get("logIndex") or 0),
                    "removed": bool(log.get("removed", False)),
                }
                for log in raw
            ]
        except (KeyError, TypeError, ValueError):
            raise TemporarilyUnavailable(
                "chain read failed (eth_getLogs: malformed)", reason="chain_unavailable"
            ) from None


class ChainDidRegistries:
    """did:ethr on every started chain that has an ERC-1056 registry (its `did_registry`,
    or the one an embedded chain deployed at start): `did_auth.core.did.resolver.EthrRegistries`
    for a `DidResolver` built before the chains start."""

    def __init__(self, chains: ChainRegistry) -> None:
        self.chains = chains

    def ethr_resolver(self, chain_id: int) -> EthrResolver | None:
        client = self.chains.clients.get(chain_id)
        if client is None or not client.did_registry:
            return None
        call_from = client.embedded.deployer if client.embedded else None
        reader = Web3ChainReader(client.w3, call_from=call_from)
        return EthrResolver(chain_id=chain_id, registry=client.did_registry, reader=reader)
