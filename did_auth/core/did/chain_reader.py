"""The one seam between DID resolution and a chain: three read-only JSON-RPC operations.

Implementations (`did_auth.adapters.chain.did_reader.Web3ChainReader` over any `web3.AsyncWeb3`;
tests wrap readers to count calls) raise every transport failure as
`TemporarilyUnavailable`: the server fails closed, it never skips a check because a chain
is unreachable.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, Protocol, runtime_checkable

__all__ = ["BlockId", "ChainReader"]

BlockId = int | Literal["latest"]


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
