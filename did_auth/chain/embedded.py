"""The embedded chain: `rpc_url = "embedded"` runs an in-process py-evm chain (eth-tester).

It is what `did-auth serve` uses when given no config: a development chain with eth-tester's
funded, well-known accounts, on which the canonical ERC-1056 `EthereumDIDRegistry`, the
project's `RevocationRegistry` (admin and operator: the first account) and a
`TestWalletFactory` (CREATE2 factory of minimal EIP-1271 wallets, so that counterfactual
EIP-6492 logins can be tried) are deployed at start. Nothing on it is private or durable:
it lives and dies with the process.

Chain id: eth-tester hard-codes 131277322940537; the chain here answers the configured
`chain_id` both to `eth_chainId` and to the CHAINID opcode (EIP-155 transaction signatures
and EIP-712 domains agree with it), by giving the py-evm chain class that id.

Requests run synchronously on the calling thread (py-evm is not thread-safe and an
`eth_call` takes milliseconds); that is fine for a development chain.
"""

from __future__ import annotations

import ast
import logging
from dataclasses import dataclass, field
from typing import Any

from eth_abi.abi import encode
from eth_tester import EthereumTester, PyEVMBackend
from eth_tester.exceptions import TransactionFailed, ValidationError
from web3 import AsyncWeb3, Web3
from web3.providers.async_base import AsyncBaseProvider
from web3.providers.eth_tester import AsyncEthereumTesterProvider, EthereumTesterProvider
from web3.types import RPCEndpoint, RPCResponse

from did_auth.chain.client import ChainClient
from did_auth.chain.contracts import load_artifact
from did_auth.settings import ChainConfig

__all__ = ["EmbeddedChain", "EmbeddedTransport", "embedded_client", "start_embedded_chain"]

log = logging.getLogger("did_auth.chain")

_DEPLOY_GAS = 8_000_000
_BLOCK_TAGS = frozenset({"latest", "pending", "earliest", "safe", "finalized"})


def _endpoints(chain_id: int) -> dict[str, dict[str, Any]]:
    """web3's eth-tester endpoints with `eth_chainId` answering our chain id."""
    from web3.providers.eth_tester.defaults import API_ENDPOINTS

    endpoints = {ns: dict(methods) for ns, methods in API_ENDPOINTS.items()}
    endpoints["eth"]["chainId"] = lambda *_args, **_kw: chain_id
    return endpoints


class _AsyncTesterProvider(AsyncEthereumTesterProvider):
    """web3's async eth-tester provider over an existing EthereumTester (the stock one
    always builds a fresh chain)."""

    def __init__(self, tester: EthereumTester, chain_id: int) -> None:
        AsyncBaseProvider.__init__(self)
        self.ethereum_tester = tester
        self.api_endpoints = _endpoints(chain_id)


@dataclass
class EmbeddedChain:
    """An in-process chain with the registries deployed; addresses are deterministic (the
    same deployer key and order every time)."""

    chain_id: int
    tester: EthereumTester
    private_keys: tuple[str, ...]
    did_registry: str = ""
    revocation_registry: str = ""
    wallet_factory: str = ""
    deployer: str = ""
    closed: bool = field(default=False, repr=False)

    def __post_init__(self) -> None:
        if not self.deployer:
            self.deployer = str(self.tester.get_accounts()[0])

    def deploy(self, artifact_name: str, types: list[str], args: list[Any]) -> str:
        """Deploy a package artifact from the first account; returns its address."""
        art = load_artifact(artifact_name)
        data = art.bytecode + (encode(types, args).hex() if types else "")
        tx_hash = self.tester.send_transaction(
            {"from": self.deployer, "data": data, "gas": _DEPLOY_GAS}
        )
        receipt = self.tester.get_transaction_receipt(tx_hash)
        if receipt.get("status") != 1 or not receipt.get("contract_address"):
            raise RuntimeError(f"embedded chain: deploying {artifact_name} failed")
        return str(receipt["contract_address"])

    def sync_w3(self) -> Web3:
        """A synchronous Web3 on this chain (e.g. for deploying test contracts)."""
        return Web3(EthereumTesterProvider(self.tester, api_endpoints=_endpoints(self.chain_id)))

    def async_w3(self) -> AsyncWeb3[Any]:
        return AsyncWeb3(_AsyncTesterProvider(self.tester, self.chain_id))

    def close(self) -> None:
        self.closed = True


def start_embedded_chain(chain_id: int) -> EmbeddedChain:
    """A fresh py-evm chain answering `chain_id`, with the registries deployed."""
    backend = PyEVMBackend()
    chain = backend.chain
    # A subclass (not an instance attribute) so that chains py-evm re-creates from this one
    # (snapshots, new blocks) keep the id.
    chain.__class__ = type("EmbeddedPyEvmChain", (type(chain),), {"chain_id": chain_id})
    tester = EthereumTester(backend)
    keys = tuple(k.to_hex() for k in backend.account_keys)
    embedded = EmbeddedChain(chain_id=chain_id, tester=tester, private_keys=keys)
    embedded.did_registry = embedded.deploy("EthereumDIDRegistry", [], [])
    embedded.revocation_registry = embedded.deploy(
        "RevocationRegistry", ["address"], [embedded.deployer]
    )
    embedded.wallet_factory = embedded.deploy("TestWalletFactory", [], [])
    return embedded


def _block(tag: Any) -> str | int:
    if isinstance(tag, str) and tag in _BLOCK_TAGS:
        return tag
    if isinstance(tag, str) and tag.startswith("0x"):
        return int(tag, 16)
    raise ValueError(f"unsupported block parameter {tag!r}")


def _revert_data(exc: TransactionFailed) -> str:
    # eth-tester reports revert data as the repr of a bytes object.
    text = str(exc.args[0]) if exc.args else ""
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return "0x"
    return "0x" + value.hex() if isinstance(value, bytes) else "0x"


def _hex(value: Any) -> str:
    return value if isinstance(value, str) else "0x" + bytes(value).hex()


class EmbeddedTransport:
    """Raw JSON-RPC (the subset the chain layer reads with) answered by an EthereumTester.

    Speaks the same wire format as an HTTP node (hex quantities, `{"error"}` objects, code 3
    for reverts), so ChainClient handles both alike; every call counts as one round trip.
    """

    def __init__(self, chain: EmbeddedChain) -> None:
        self.chain = chain
        self.round_trips = 0
        self._next_id = 0

    def _answer(self, method: str, params: Any) -> Any:
        t = self.chain.tester
        p = list(params or [])
        if method == "eth_chainId":
            return hex(self.chain.chain_id)
        if method == "eth_blockNumber":
            return hex(int(t.get_block_by_number("latest")["number"]))
        if method == "eth_getBlockByNumber":
            blk = t.get_block_by_number(_block(p[0] if p else "latest"))
            return {
                "number": hex(int(blk["number"])),
                "hash": _hex(blk["hash"]),
                "parentHash": _hex(blk["parent_hash"]),
                "timestamp": hex(int(blk["timestamp"])),
            }
        if method == "eth_getCode":
            block = _block(p[1] if len(p) > 1 else "latest")
            return t.get_code(Web3.to_checksum_address(p[0]), block)
        if method == "eth_call":
            tx = dict(p[0])
            call: dict[str, Any] = {
                # eth-tester charges gas on calls; its first account can pay for them.
                "from": tx.get("from") or self.chain.deployer,
                "data": tx.get("data") or tx.get("input") or "0x",
            }
            if tx.get("to"):
                call["to"] = Web3.to_checksum_address(tx["to"])
            if tx.get("gas"):
                call["gas"] = int(tx["gas"], 16)
            return t.call(call, _block(p[1] if len(p) > 1 else "latest"))
        raise LookupError(method)

    def _respond(self, method: str, params: Any) -> dict[str, Any]:
        self._next_id += 1
        reply: dict[str, Any] = {"jsonrpc": "2.0", "id": self._next_id}
        try:
            reply["result"] = self._answer(method, params)
        except TransactionFailed as exc:
            reply["error"] = {"code": 3, "message": "execution reverted", "data": _revert_data(exc)}
        except LookupError:
            reply["error"] = {"code": -32601, "message": f"method {method} not supported"}
        except (ValidationError, ValueError, TypeError, KeyError, IndexError) as exc:
            reply["error"] = {"code": -32602, "message": f"invalid params: {exc}"}
        except Exception as exc:  # py-evm's own errors: the node failed, not the call
            log.warning("embedded chain: %s failed: %r", method, exc)
            reply["error"] = {"code": -32603, "message": "internal error"}
        return reply

    async def make_request(self, method: RPCEndpoint, params: Any) -> RPCResponse:
        self.round_trips += 1
        return self._respond(method, params)  # type: ignore[return-value]

    async def make_batch_request(
        self, batch_requests: list[tuple[RPCEndpoint, Any]]
    ) -> list[RPCResponse] | RPCResponse:
        self.round_trips += 1
        return [self._respond(m, p) for m, p in batch_requests]  # type: ignore[misc]

    async def disconnect(self) -> None:
        return None


def embedded_client(config: ChainConfig) -> ChainClient:
    """A ChainClient for a `rpc_url = "embedded"` entry (builds and deploys the chain)."""
    chain = start_embedded_chain(config.chain_id)
    return ChainClient(config, EmbeddedTransport(chain), chain.async_w3(), embedded=chain)
