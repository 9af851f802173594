"""The embedded chain as a JSON-RPC 2.0 endpoint (development only: `POST /dev/rpc`).

A bot, a wallet or a script talks to the in-process chain as to any node: `eth_*` methods
(sending raw transactions, calls, receipts, logs, ...) in the wire format of JSON-RPC
(hex quantities, camelCase fields). Requests are answered by web3's eth-tester endpoints
on the chain's worker thread (`EvmWorker`: the chain is never used from two threads at
once); an `eth_call`-like request that runs past `CALL_BUDGET` is stopped (it runs on a
throwaway state). Only `eth_*`, `net_version` and `web3_clientVersion`: eth-tester's
`evm_*` / `testing_*` controls (snapshots, time travel) are not reachable.

eth-tester's accounts are unlocked, and one of them is the RevocationRegistry's operator:
nothing here signs with them. `eth_sendTransaction` and the signing methods (`eth_sign`,
`eth_signTransaction`, `eth_signTypedData*`; `personal_*` is not `eth_*`) are refused
(-32601), so every write is an `eth_sendRawTransaction` signed by a key the caller holds.
"""

from __future__ import annotations

import asyncio
from typing import Any

from web3.providers.eth_tester import EthereumTesterProvider
from web3.providers.eth_tester.middleware import request_formatters, result_formatters
from web3.types import RPCEndpoint

from did_auth.adapters.chain.embedded import EmbeddedChain, EvmDeadline, _endpoints

__all__ = ["CALL_BUDGET", "DevRpc"]

#: Wall-clock cap of one eth_call / eth_estimateGas / eth_createAccessList.
CALL_BUDGET = 5.0
#: How long any other request may wait for the worker and run.
WAIT = 30.0
_CAPPED = frozenset({"eth_call", "eth_estimateGas", "eth_createAccessList"})
_EXTRA = frozenset({"net_version", "web3_clientVersion"})
MAX_BATCH = 100
#: Methods that would sign with the chain's unlocked accounts: never answered.
_SIGNING = frozenset({"eth_sendTransaction", "eth_signTransaction", "eth_sign"})


def _wire(value: Any) -> Any:
    """eth-tester's Python values as JSON-RPC wire values: quantities as hex strings."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return hex(value)
    if isinstance(value, bytes | bytearray):
        return "0x" + bytes(value).hex()
    if isinstance(value, dict):
        return {str(k): _wire(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_wire(v) for v in value]
    return str(value)


def _error(request_id: Any, code: int, message: str, data: Any = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    return {"jsonrpc": "2.0", "id": request_id, "error": error}


class DevRpc:
    def __init__(self, chain: EmbeddedChain) -> None:
        self.chain = chain
        self._provider = EthereumTesterProvider(
            chain.tester, api_endpoints=_endpoints(chain.chain_id)
        )

    def _answer(self, method: str, params: list[Any]) -> dict[str, Any]:
        """Runs on the worker thread."""
        endpoint = RPCEndpoint(method)
        if method in _CAPPED and params and isinstance(params[0], dict):
            # eth-tester charges gas on calls: its first (funded) account pays when no `from`.
            params = [{"from": self.chain.deployer, **params[0]}, *params[1:]]
        formatter = request_formatters.get(endpoint)
        try:
            args = formatter(params) if formatter else params
        except (TypeError, ValueError, KeyError, IndexError) as exc:
            return {"error": {"code": -32602, "message": f"invalid params: {exc}"}}
        reply = dict(self._provider.make_request(endpoint, args))
        if "error" in reply:
            return {"error": _wire(reply["error"])}
        result = reply.get("result")
        shape = (result_formatters or {}).get(endpoint)
        if shape is not None:
            result = shape(result)
        return {"result": _wire(result)}

    async def _one(self, request: Any) -> dict[str, Any]:
        if not isinstance(request, dict):
            return _error(None, -32600, "invalid request: not a JSON object")
        request_id = request.get("id")
        method, params = request.get("method"), request.get("params", [])
        if request.get("jsonrpc") != "2.0" or not isinstance(method, str):
            return _error(request_id, -32600, 'invalid request: needs "jsonrpc": "2.0", "method"')
        if not (method.startswith("eth_") or method in _EXTRA):
            return _error(request_id, -32601, f"method {method[:80]} not available")
        if method in _SIGNING or method.startswith("eth_signTypedData"):
            return _error(
                request_id, -32601,
                f"method {method[:80]} not available: the chain's accounts sign nothing here; "
                "sign the transaction yourself and use eth_sendRawTransaction",
            )
        if not isinstance(params, list):
            return _error(request_id, -32602, "invalid params: params must be an array")
        budget = CALL_BUDGET if method in _CAPPED else None
        try:
            async with asyncio.timeout(WAIT):
                answer = await self.chain.worker.run(
                    lambda: self._answer(method, params), budget=budget
                )
        except EvmDeadline as exc:
            return _error(request_id, -32000, f"execution stopped after {exc.budget:g} s")
        except TimeoutError:
            return _error(request_id, -32000, "the embedded chain did not answer in time")
        except Exception as exc:  # eth-tester's own validation and revert errors
            message = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
            code = 3 if type(exc).__name__ == "TransactionFailed" else -32000
            return _error(request_id, code, message)
        return {"jsonrpc": "2.0", "id": request_id, **answer}

    def info(self) -> dict[str, Any]:
        """What a script needs to use the chain: its id and the deployed contracts."""
        return {
            "chain_id": self.chain.chain_id,
            "did_registry": self.chain.did_registry,
            "revocation_registry": self.chain.revocation_registry,
            "wallet_factory": self.chain.wallet_factory,
        }

    async def handle(self, payload: Any) -> Any:
        """A JSON-RPC request or batch (decoded JSON) -> its response(s)."""
        if isinstance(payload, list):
            if not payload or len(payload) > MAX_BATCH:
                return _error(None, -32600, f"invalid request: a batch of 1..{MAX_BATCH}")
            return [await self._one(item) for item in payload]
        return await self._one(payload)
