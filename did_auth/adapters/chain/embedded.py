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

Threads: py-evm is pure Python and not thread-safe, and a contract can make it work for
seconds (a loop, or the BN254 pairing precompile, priced for native code but ~0.15 s a pair
in py_ecc). So every use of the chain from the server runs on one worker thread of its own
(`EvmWorker`), never on the event loop: a slow call cannot stall other requests, and the
chain is never used from two threads at once (other threads, e.g. `sync_w3()` in tests,
take the same lock). A request with a wall-clock cap (`REQUEST_BUDGET`, set for signature
checks) is stopped when it runs past the cap, as geth stops an `eth_call` after
`--rpc.evmtimeout`: the worker raises an exception inside the running EVM
(`PyThreadState_SetAsyncExc`, CPython), which unwinds it; an `eth_call` runs on a throwaway
state that is never persisted, so nothing of the chain changes. A capped request that
waited for the worker longer than its cap is not started at all (429 slow_down with
Retry-After, `rpc_busy`: the chain is busy with signer-chosen work).
"""

from __future__ import annotations

import ast
import asyncio
import ctypes
import logging
import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from eth_abi.abi import encode
from eth_tester import EthereumTester, PyEVMBackend
from eth_tester.exceptions import TransactionFailed, ValidationError
from web3 import AsyncWeb3, Web3
from web3.providers.async_base import AsyncBaseProvider
from web3.providers.eth_tester import AsyncEthereumTesterProvider, EthereumTesterProvider
from web3.types import RPCEndpoint, RPCResponse

from did_auth.adapters.chain.contracts import load_artifact
from did_auth.adapters.chain.rpc import REQUEST_BUDGET, RpcTimedOut
from did_auth.core.errors import RateLimited, TemporarilyUnavailable

__all__ = [
    "EmbeddedChain",
    "EmbeddedTransport",
    "EvmDeadline",
    "EvmWorker",
    "start_embedded_chain",
]

log = logging.getLogger("did_auth.adapters.chain")

_DEPLOY_GAS = 8_000_000
_BLOCK_TAGS = frozenset({"latest", "pending", "earliest", "safe", "finalized"})


_T = TypeVar("_T")
#: How long a request without a cap may wait for the worker and run (as an RPC timeout).
DEFAULT_TIMEOUT = 5.0


class _Interrupt(BaseException):
    """Raised inside the worker thread, in the running EVM, when a capped job passes its
    deadline. A BaseException so that no `except Exception` in py-evm, py_ecc or eth-tester
    swallows it on the way out."""


class EvmDeadline(Exception):
    """A capped job did not finish in time: `started` False when it waited for the worker
    longer than its cap and never ran, True when it ran and was stopped at the cap."""

    def __init__(self, budget: float, *, started: bool) -> None:
        super().__init__(f"EVM job {'stopped' if started else 'not started'} at {budget:g} s")
        self.budget = budget
        self.started = started


def _set_async_exc(arg: type[Any]) -> Callable[[int, Any], int] | None:
    """`PyThreadState_SetAsyncExc(thread id, exception)` through its own ctypes prototype
    (the shared `ctypes.pythonapi` attribute is left untouched); `arg` is `py_object` to
    raise an exception, `c_void_p` to pass NULL (clear a pending one)."""
    api = getattr(ctypes, "pythonapi", None)  # CPython only
    if api is None:  # pragma: no cover - other interpreters: caps are checked at start only
        return None
    prototype = ctypes.PYFUNCTYPE(ctypes.c_int, ctypes.c_ulong, arg)
    fn: Callable[[int, Any], int] = prototype(("PyThreadState_SetAsyncExc", api))
    return fn


_SET_ASYNC_EXC = _set_async_exc(ctypes.py_object)
_CLEAR_ASYNC_EXC = _set_async_exc(ctypes.c_void_p)


@dataclass(eq=False)
class _Job:
    fn: Callable[[], Any]
    budget: float | None
    queued_at: float


class EvmWorker:
    """One thread that runs every use of one in-process chain, in order.

    `run(fn, budget=)` runs `fn` there (holding `lock`, which other threads that touch the
    chain take too). With a budget, `fn` is stopped when it runs longer than `budget`
    seconds, and not started when it waited longer than that (`EvmDeadline`).

    Stopping: a timer thread raises `_Interrupt` inside the worker thread while (and only
    while) that job is the one running, under `_guard`; the job clears any not yet
    delivered interrupt under the same guard before it ends, so an interrupt is never
    delivered outside `_execute`, where it is caught.
    """

    def __init__(self, name: str) -> None:
        self.lock = threading.RLock()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._guard = threading.Lock()
        self._current: _Job | None = None
        self._thread_id = 0

    async def run(self, fn: Callable[[], _T], *, budget: float | None = None) -> _T:
        job = _Job(fn, budget, time.monotonic())
        try:
            future = self._executor.submit(self._execute, job)
        except RuntimeError:  # shut down
            raise TemporarilyUnavailable(
                "the embedded chain is stopped", reason="chain_stopped"
            ) from None
        result: _T = await asyncio.wrap_future(future)
        return result

    def _execute(self, job: _Job) -> Any:
        with self.lock:
            if job.budget is not None and time.monotonic() - job.queued_at > job.budget:
                raise EvmDeadline(job.budget, started=False)
            timer: threading.Timer | None = None
            try:
                try:
                    with self._guard:
                        self._current = job
                        self._thread_id = threading.get_ident()
                    if job.budget is not None and _SET_ASYNC_EXC is not None:
                        timer = threading.Timer(job.budget, self._interrupt, (job,))
                        timer.daemon = True
                        timer.start()
                    return job.fn()
                finally:
                    if timer is not None:
                        timer.cancel()
                    with self._guard:
                        self._current = None
                        if _CLEAR_ASYNC_EXC is not None:
                            _CLEAR_ASYNC_EXC(self._thread_id, None)
            except _Interrupt:
                with self._guard:
                    self._current = None
                assert job.budget is not None
                raise EvmDeadline(job.budget, started=True) from None

    def _interrupt(self, job: _Job) -> None:
        with self._guard:
            if self._current is job and _SET_ASYNC_EXC is not None:
                log.warning("embedded chain: stopping an EVM call after %ss", job.budget)
                _SET_ASYNC_EXC(self._thread_id, _Interrupt)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


def _endpoints(chain_id: int) -> dict[str, dict[str, Any]]:
    """web3's eth-tester endpoints with `eth_chainId` answering our chain id."""
    from web3.providers.eth_tester.defaults import API_ENDPOINTS

    endpoints = {ns: dict(methods) for ns, methods in API_ENDPOINTS.items()}
    endpoints["eth"]["chainId"] = lambda *_args, **_kw: chain_id
    return endpoints


class _LockedTesterProvider(EthereumTesterProvider):
    """web3's eth-tester provider that takes the chain's lock around each request, so that
    a thread using it never runs the EVM at the same time as the worker."""

    def __init__(self, chain: EmbeddedChain) -> None:
        super().__init__(chain.tester, api_endpoints=_endpoints(chain.chain_id))
        self._lock = chain.worker.lock

    def make_request(self, method: RPCEndpoint, params: Any) -> RPCResponse:
        with self._lock:
            return super().make_request(method, params)


class _AsyncTesterProvider(AsyncEthereumTesterProvider):
    """web3's async eth-tester provider over an existing EthereumTester (the stock one
    always builds a fresh chain), answering on the chain's worker thread."""

    def __init__(self, chain: EmbeddedChain, timeout: float = DEFAULT_TIMEOUT) -> None:
        AsyncBaseProvider.__init__(self)
        self.ethereum_tester = chain.tester
        self.api_endpoints = _endpoints(chain.chain_id)
        self._sync = EthereumTesterProvider(chain.tester, api_endpoints=self.api_endpoints)
        self._worker = chain.worker
        self._timeout = timeout

    async def make_request(self, method: RPCEndpoint, params: Any) -> RPCResponse:
        # asyncio.timeout, not wait_for: Python 3.11's wait_for loses a cancellation that
        # arrives as the inner future completes (a watcher task could then never stop).
        try:
            async with asyncio.timeout(self._timeout):
                return await self._worker.run(lambda: self._sync.make_request(method, params))
        except TimeoutError:
            raise RpcTimedOut(
                "the embedded chain did not answer in time", reason="rpc_timeout"
            ) from None


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
    worker: EvmWorker = field(init=False, repr=False)
    #: Called (on the EVM's thread) after every block mined: the revocation watcher's wakeup.
    on_block: list[Callable[[], None]] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        self.worker = EvmWorker(f"embedded-evm-{self.chain_id}")
        if not self.deployer:
            self.deployer = str(self.tester.get_accounts()[0])

    def deploy(self, artifact_name: str, types: list[str], args: list[Any]) -> str:
        """Deploy a package artifact from the first account; returns its address."""
        art = load_artifact(artifact_name)
        data = art.bytecode + (encode(types, args).hex() if types else "")
        with self.worker.lock:
            tx_hash = self.tester.send_transaction(
                {"from": self.deployer, "data": data, "gas": _DEPLOY_GAS}
            )
            receipt = self.tester.get_transaction_receipt(tx_hash)
        if receipt.get("status") != 1 or not receipt.get("contract_address"):
            raise RuntimeError(f"embedded chain: deploying {artifact_name} failed")
        return str(receipt["contract_address"])

    def sync_w3(self) -> Web3:
        """A synchronous Web3 on this chain (e.g. for deploying test contracts); it runs on
        the calling thread, taking the chain's lock (never call it on the event loop while
        the server may be using the chain for long)."""
        return Web3(_LockedTesterProvider(self))

    def async_w3(self, timeout: float = DEFAULT_TIMEOUT) -> AsyncWeb3[Any]:
        return AsyncWeb3(_AsyncTesterProvider(self, timeout))

    def close(self) -> None:
        self.closed = True
        self.worker.close()


class _WallClockTester(EthereumTester):  # type: ignore[misc]
    """eth-tester whose blocks carry the wall-clock time of their mining.

    py-evm opens the next (pending) block, with its timestamp, as soon as the previous one
    is mined, and eth-tester auto-mines that block when the next transaction comes, however
    much later: on an idle chain a transaction ran with, and its block recorded, a time
    seconds or minutes old. A relayed `revokeAll()` then set `revokedBefore` (its
    `block.timestamp`) before the auth_time of sessions it was meant to end. Here the pending
    block is re-stamped with the current time before each transaction runs (and before an
    empty block is mined), never earlier than its parent + 1: a block's timestamp "MUST be
    greater than the timestamp of its parent" (Yellow Paper §4.3.4, py-evm's header check).
    Within one second, consecutive blocks may run ahead of the clock by their count."""

    #: Called after each block this chain mines (EmbeddedChain.on_block, set per instance).
    block_listeners: list[Callable[[], None]] | None = None

    def _mined(self) -> None:
        for listener in list(self.block_listeners or ()):
            try:
                listener()
            except Exception:  # a listener must never fail a transaction
                log.exception("embedded chain: block listener failed")

    def _stamp_pending(self) -> None:
        backend = self.backend
        if not isinstance(backend, PyEVMBackend):
            return
        chain = backend.chain
        if chain.get_block().transactions:
            return  # already executed at its stamp (not auto-mining): keep it
        parent = chain.get_canonical_head()
        now = max(int(time.time()), int(parent.timestamp) + 1)
        if int(chain.header.timestamp) != now:
            chain.set_header_timestamp(now)

    def send_transaction(self, transaction: Any) -> Any:
        self._stamp_pending()
        try:
            return super().send_transaction(transaction)
        finally:
            self._mined()  # auto-mined (eth-tester mines one block per transaction)

    def send_raw_transaction(self, raw_transaction_hex: Any) -> Any:
        self._stamp_pending()
        try:
            return super().send_raw_transaction(raw_transaction_hex)
        finally:
            self._mined()

    def mine_blocks(self, num_blocks: int = 1, coinbase: Any = None) -> Any:
        hashes = []
        for _ in range(num_blocks):
            self._stamp_pending()
            if coinbase is None:
                hashes += super().mine_blocks(1)
            else:
                hashes += super().mine_blocks(1, coinbase)
        if num_blocks:
            self._mined()
        return hashes


def start_embedded_chain(chain_id: int) -> EmbeddedChain:
    """A fresh py-evm chain answering `chain_id`, with the registries deployed."""
    backend = PyEVMBackend()
    chain = backend.chain
    # A subclass (not an instance attribute) so that chains py-evm re-creates from this one
    # (snapshots, new blocks) keep the id.
    chain.__class__ = type("EmbeddedPyEvmChain", (type(chain),), {"chain_id": chain_id})
    tester = _WallClockTester(backend)
    keys = tuple(k.to_hex() for k in backend.account_keys)
    embedded = EmbeddedChain(chain_id=chain_id, tester=tester, private_keys=keys)
    tester.block_listeners = embedded.on_block
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
    Requests run on the chain's worker thread; a request with a cap (`REQUEST_BUDGET`) that
    runs past it is stopped and is `RpcTimedOut`, one that could not start within it is
    `RateLimited` (`rpc_busy`, 429); one without waits at most `timeout` (`RpcTimedOut`).
    """

    def __init__(self, chain: EmbeddedChain, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.chain = chain
        self.round_trips = 0
        self.timeout = timeout
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

    async def _on_worker(self, fn: Callable[[], _T]) -> _T:
        budget = REQUEST_BUDGET.get()
        try:
            if budget is not None:  # the worker bounds both the wait and the run
                return await self.chain.worker.run(fn, budget=budget)
            async with asyncio.timeout(self.timeout):  # not wait_for (see _AsyncTesterProvider)
                return await self.chain.worker.run(fn)
        except EvmDeadline as exc:
            if not exc.started:
                # Only capped requests (contract-signature checks, whose cost the signer
                # chooses) give up waiting: the server sheds that work to protect itself and
                # the request was never judged, so it is "slow down, retry" (429 with
                # Retry-After), not a server fault (a 5xx any outsider could raise at will).
                raise RateLimited(
                    "the embedded chain is busy with other signature checks; retry later",
                    retry_after=math.ceil(exc.budget),
                    reason="rpc_busy",
                ) from None
            raise RpcTimedOut(
                f"the embedded chain stopped a call after {exc.budget:g} s", reason="rpc_timeout"
            ) from None
        except TimeoutError:
            raise RpcTimedOut(
                "the embedded chain did not answer in time", reason="rpc_timeout"
            ) from None

    async def make_request(self, method: RPCEndpoint, params: Any) -> RPCResponse:
        self.round_trips += 1
        reply = await self._on_worker(lambda: self._respond(method, params))
        return reply  # type: ignore[return-value]

    async def make_batch_request(
        self, batch_requests: list[tuple[RPCEndpoint, Any]]
    ) -> list[RPCResponse] | RPCResponse:
        self.round_trips += 1
        replies = await self._on_worker(lambda: [self._respond(m, p) for m, p in batch_requests])
        return replies  # type: ignore[return-value]

    async def disconnect(self) -> None:
        return None
