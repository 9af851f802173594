"""JSON-RPC vocabulary shared by the chain transports (HTTP in `client`, the in-process
chain in `embedded`): calls, the per-request wall-clock budget, and the errors a node's
answer maps to."""

from __future__ import annotations

import contextvars
import re
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from web3.types import RPCEndpoint, RPCResponse

from did_auth.core.errors import TemporarilyUnavailable

__all__ = [
    "REQUEST_BUDGET",
    "BlockCalls",
    "ExecutionTimeout",
    "RpcCall",
    "RpcError",
    "RpcTimedOut",
    "RpcTransport",
]

#: One JSON-RPC request: (method, params).
RpcCall = tuple[str, list[Any]]
#: Builds the calls of one decision for a block tag ("latest" or a 0x block number).
BlockCalls = Callable[[str], Sequence[RpcCall]]

#: The wall-clock cap (seconds) of the request being sent, or None for the transport's own
#: `rpc_timeout`. Set by `ChainClient.read(..., timeout=)` around the decision's request
#: only; the HTTP transport uses it as that request's timeout, the embedded chain stops its
#: EVM when it runs past it.
REQUEST_BUDGET: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "did_auth_rpc_request_budget", default=None
)

# What nodes answer when the EVM ran an eth_call and it failed (geth core/vm/errors.go and
# its RPC execution timeout, Hardhat/EDR, eth-tester), as opposed to the node failing.
_EXECUTION_FAILURE = re.compile(
    r"revert|vm exception|out of gas|invalid opcode|invalid jump|stack (?:underflow|overflow|"
    r"limit)|max call depth|execution aborted|write protection|return data out of bounds|"
    r"max (?:init)?code size|code storage out of gas|insufficient balance for transfer",
    re.IGNORECASE,
)


class RpcTimedOut(TemporarilyUnavailable):
    """The RPC did not answer a request within its timeout (503 unless a caller that capped
    the request decides otherwise, see `ChainClient.read`)."""


class ExecutionTimeout(Exception):
    """A capped read (`ChainClient.read(..., timeout=)`) was not answered within its cap
    although the RPC is reachable: the call itself is too slow (for a signature check, the
    wallet's code). Not a DidAuthError: the caller decides what it means."""

    def __init__(self, chain_id: int, timeout: float) -> None:
        super().__init__(f"chain {chain_id}: call not finished within {timeout:g} s")
        self.timeout = timeout


class RpcError(Exception):
    """A JSON-RPC error object the node answered with."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.data = data

    @property
    def is_revert(self) -> bool:
        """The EVM ran the call and it reverted (geth: code 3 "execution reverted"; Hardhat:
        "VM Exception ... reverted"), as opposed to the node failing to serve the request."""
        text = self.message.lower()
        return self.code == 3 or "revert" in text or "vm exception" in text

    @property
    def is_execution_failure(self) -> bool:
        """The EVM ran the call and it failed: a revert, out of gas, an invalid opcode, or the
        node's own execution timeout (geth: "execution aborted (timeout = 5s)"). The contract
        misbehaved; the node served the request."""
        return self.is_revert or _EXECUTION_FAILURE.search(self.message) is not None

    @classmethod
    def from_response(cls, error: Any) -> RpcError:
        if not isinstance(error, dict):
            return cls(-32603, str(error))
        code = error.get("code")
        data = error.get("data")
        if isinstance(data, dict):  # Hardhat nests {"message", "data"}
            data = data.get("data", data)
        return cls(code if isinstance(code, int) else -32603, str(error.get("message", "")), data)


class RpcTransport(Protocol):
    """What a ChainClient needs from a node: single and batched raw JSON-RPC requests."""

    round_trips: int

    async def make_request(self, method: RPCEndpoint, params: Any) -> RPCResponse: ...

    async def make_batch_request(
        self, batch_requests: list[tuple[RPCEndpoint, Any]]
    ) -> list[RPCResponse] | RPCResponse: ...

    async def disconnect(self) -> None: ...
