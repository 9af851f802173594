"""JSON-RPC access to the configured chains: one client (and one AsyncWeb3) per `[[chains]]`.

Rules this module enforces for every caller:

- A chain is reached only through its own `[[chains]]` entry, chosen by the chain id the
  signed message names. There is no default RPC: an unknown chain is `InvalidRequest`.
- The node is asked `eth_chainId` once (piggybacked on the first request, so it costs no
  extra round trip); an RPC that serves another chain is never trusted (fail closed).
- Fail closed: a refused connection (after bounded retries), a timeout, an HTTP error status,
  a body that is not JSON-RPC, or a JSON-RPC error on a plain read is
  `TemporarilyUnavailable` (HTTP 503), never a silently skipped check. Only a *reverted*
  `eth_call` is an answer (`RpcError.is_revert`), which callers turn into "not valid".
- Reads that belong to one decision are pinned to one block and sent as one JSON-RPC batch
  (`ChainClient.read`); `rpc_round_trips` counts HTTP requests (batches count once).
- An `eth_call` the EVM ran and that failed (reverted, ran out of gas, hit an invalid
  opcode, or was stopped by the node's own execution timeout) is an answer too
  (`RpcError.is_execution_failure`): the contract misbehaved, the node did not.
- A read may carry a wall-clock cap (`read(..., timeout=)`, used for signature checks with
  `verify_timeout`). An RPC that took the capped request (connected, request sent) but did
  not answer within the cap raises `ExecutionTimeout`: the calls themselves were too slow,
  and the caller gives the verdict (a failed proof). Not connecting within the cap, or any
  other transport failure, stays `TemporarilyUnavailable` (503): only an unreachable RPC is.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from dataclasses import KW_ONLY, dataclass, field
from typing import TYPE_CHECKING, Any

import aiohttp
from web3 import AsyncWeb3
from web3.providers.rpc import AsyncHTTPProvider
from web3.types import RPCEndpoint, RPCResponse

from did_auth.adapters.chain.rpc import (
    REQUEST_BUDGET,
    BlockCalls,
    ExecutionTimeout,
    RpcCall,
    RpcError,
    RpcTimedOut,
    RpcTransport,
)
from did_auth.adapters.monitoring.metrics import METRICS
from did_auth.config.settings import ChainConfig, Settings
from did_auth.core.errors import InvalidRequest, TemporarilyUnavailable

if TYPE_CHECKING:
    from did_auth.adapters.chain.embedded import EmbeddedChain

__all__ = [
    "REQUEST_BUDGET",
    "BlockCalls",
    "ChainClient",
    "ChainRegistry",
    "CountingHTTPProvider",
    "ExecutionTimeout",
    "RpcCall",
    "RpcError",
    "RpcTimedOut",
    "RpcTransport",
]

log = logging.getLogger("did_auth.adapters.chain")

#: Retries after a refused / dropped connection (never after a timeout: the node may be
#: working on the request, and a retry would only multiply the caller's wait).
CONNECT_RETRIES = 2
RETRY_BACKOFF = 0.05
#: Keep idle connections for less than Node's (Hardhat's) 5 s server keep-alive, so that a
#: request rarely meets a socket the server already closed (a retry covers the rest).
KEEPALIVE_SECONDS = 4.0


class CountingHTTPProvider(AsyncHTTPProvider):
    """web3's AsyncHTTPProvider with did-auth's transport policy.

    It owns one keep-alive aiohttp session per event loop, counts every HTTP POST in
    `round_trips`, retries only connection failures (at most CONNECT_RETRIES times), and
    turns every transport failure into `TemporarilyUnavailable`. Both the chain layer's raw
    reads and `AsyncWeb3` calls through this provider follow these rules.
    """

    def __init__(self, endpoint_uri: str, *, timeout: float, chain_id: int) -> None:
        super().__init__(endpoint_uri, exception_retry_configuration=None)
        self.round_trips = 0
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._chain_label = f"chain {chain_id}"
        self._session: aiohttp.ClientSession | None = None
        self._session_loop: asyncio.AbstractEventLoop | None = None

    def _current_session(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._session is None or self._session.closed or self._session_loop is not loop:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=64, keepalive_timeout=KEEPALIVE_SECONDS),
                timeout=self._timeout,
                headers=self.get_request_headers(),
            )
            self._session_loop = loop
        return self._session

    def _unavailable(self, what: str) -> TemporarilyUnavailable:
        # The URL may carry an API key: it never goes into a client-visible description.
        cls = RpcTimedOut if what == "timeout" else TemporarilyUnavailable
        return cls(f"the RPC of {self._chain_label} is unavailable", reason=f"rpc_{what}")

    async def _post(self, body: bytes) -> bytes:
        session = self._current_session()
        budget = REQUEST_BUDGET.get()
        # Capped: `connect` (pool wait + connecting) and `sock_read` (the answer) separately,
        # so that an RPC that took the request but answers too late is told apart.
        timeout = (
            self._timeout
            if budget is None
            else aiohttp.ClientTimeout(total=None, connect=budget, sock_read=budget)
        )
        for attempt in range(CONNECT_RETRIES + 1):
            self.round_trips += 1
            try:
                async with session.post(str(self.endpoint_uri), data=body, timeout=timeout) as resp:
                    if resp.status >= 400:
                        log.warning("%s: RPC answered HTTP %s", self._chain_label, resp.status)
                        raise self._unavailable("http_status")
                    return await resp.read()
            except aiohttp.ConnectionTimeoutError:
                log.warning("%s: RPC not reachable within %ss", self._chain_label, budget)
                raise self._unavailable("connect_timeout") from None
            except TimeoutError:  # includes aiohttp's ServerTimeoutError
                log.warning(
                    "%s: RPC timed out after %ss", self._chain_label, budget or timeout.total
                )
                raise self._unavailable("timeout") from None
            except (aiohttp.ClientOSError, aiohttp.ServerDisconnectedError) as exc:
                if attempt == CONNECT_RETRIES:
                    log.warning("%s: RPC unreachable: %s", self._chain_label, exc)
                    raise self._unavailable("unreachable") from None
                await asyncio.sleep(RETRY_BACKOFF * 2**attempt)
            except aiohttp.ClientError as exc:
                log.warning("%s: RPC transport error: %s", self._chain_label, exc)
                raise self._unavailable("transport") from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _decode(self, raw: bytes) -> Any:
        try:
            return json.loads(raw)
        except ValueError:
            raise self._unavailable("bad_body") from None

    async def make_request(self, method: RPCEndpoint, params: Any) -> RPCResponse:
        reply = self._decode(await self._post(self.encode_rpc_request(method, params)))
        if not isinstance(reply, dict):
            raise self._unavailable("bad_body")
        return reply  # type: ignore[return-value]

    async def make_batch_request(
        self, batch_requests: list[tuple[RPCEndpoint, Any]]
    ) -> list[RPCResponse] | RPCResponse:
        reply = self._decode(await self._post(self.encode_batch_rpc_request(batch_requests)))
        if isinstance(reply, list):
            # JSON-RPC 2.0 lets a server answer a batch in any order: match ids.
            return sorted(reply, key=lambda r: r.get("id", 0) if isinstance(r, dict) else 0)
        if isinstance(reply, dict):
            return reply  # type: ignore[return-value]
        raise self._unavailable("bad_body")

    async def disconnect(self) -> None:
        session, self._session = self._session, None
        if session is not None and not session.closed:
            try:
                await session.close()
            except RuntimeError:  # its event loop is gone; nothing left to release
                pass


def _result(reply: Any, method: str) -> Any:
    if not isinstance(reply, dict):
        raise TemporarilyUnavailable("malformed RPC answer", reason="rpc_bad_body")
    if "error" in reply:
        return RpcError.from_response(reply["error"])
    if "result" not in reply:
        raise TemporarilyUnavailable(f"malformed RPC answer to {method}", reason="rpc_bad_body")
    return reply["result"]


@dataclass(eq=False)
class ChainClient:
    """One configured chain: raw pinned/batched reads for decisions, and `w3` for the rest."""

    config: ChainConfig
    transport: RpcTransport
    w3: AsyncWeb3[Any]
    _: KW_ONLY
    embedded: EmbeddedChain | None = None
    chain_id: int = field(init=False)
    _chain_id_checked: bool = field(default=False, init=False)
    _batches_ok: bool = field(default=True, init=False)

    def __post_init__(self) -> None:
        self.chain_id = self.config.chain_id

    @property
    def rpc_round_trips(self) -> int:
        """HTTP requests sent to this chain's RPC so far (a batch counts once)."""
        return self.transport.round_trips

    @property
    def did_registry(self) -> str | None:
        """The ERC-1056 registry: the configured one, else the embedded chain's."""
        if self.config.did_registry:
            return self.config.did_registry
        return self.embedded.did_registry if self.embedded else None

    @property
    def revocation_registry(self) -> str | None:
        if self.config.revocation_registry:
            return self.config.revocation_registry
        return self.embedded.revocation_registry if self.embedded else None

    # ------------------------------------------------------------------ raw requests

    async def _send(self, calls: Sequence[RpcCall]) -> list[Any]:
        """One round trip for `calls`; results in order, each a value or an RpcError."""
        try:
            results = await self._send_once(calls)
        except TemporarilyUnavailable:
            METRICS.rpc_calls.labels(chain=str(self.chain_id), outcome="error").inc()
            raise
        METRICS.rpc_calls.labels(chain=str(self.chain_id), outcome="ok").inc()
        return results

    async def _send_once(self, calls: Sequence[RpcCall]) -> list[Any]:
        check = not self._chain_id_checked
        batch: list[tuple[RPCEndpoint, Any]] = [(RPCEndpoint(m), p) for m, p in calls]
        if check:
            batch.insert(0, (RPCEndpoint("eth_chainId"), []))
        if len(batch) == 1:
            replies: list[Any] = [await self.transport.make_request(*batch[0])]
        elif self._batches_ok:
            got = await self.transport.make_batch_request(batch)
            if isinstance(got, list) and len(got) == len(batch):
                replies = list(got)
            else:
                # Some RPC providers refuse batches: degrade to concurrent single requests.
                log.warning("chain %s: RPC refused a JSON-RPC batch", self.chain_id)
                self._batches_ok = False
                replies = await self._one_by_one(batch)
        else:
            replies = await self._one_by_one(batch)
        results = [_result(r, m) for r, (m, _) in zip(replies, batch, strict=True)]
        if check:
            self._verify_chain_id(results.pop(0))
        return results

    async def _one_by_one(self, batch: list[tuple[RPCEndpoint, Any]]) -> list[Any]:
        return list(await asyncio.gather(*(self.transport.make_request(m, p) for m, p in batch)))

    def _verify_chain_id(self, answer: Any) -> None:
        try:
            served = int(answer, 16) if isinstance(answer, str) else None
        except ValueError:
            served = None
        if served != self.chain_id:
            log.error(
                "chain %s: the configured RPC serves chain %s; refusing to use it",
                self.chain_id,
                served,
            )
            raise TemporarilyUnavailable(
                f"the RPC of chain {self.chain_id} serves another chain", reason="rpc_wrong_chain"
            )
        self._chain_id_checked = True

    @staticmethod
    def _plain(result: Any, method: str) -> Any:
        """A read that must succeed: a JSON-RPC error here means the node is not serving."""
        if isinstance(result, RpcError):
            log.warning("%s failed: %s", method, result)
            raise TemporarilyUnavailable(
                f"the chain RPC could not answer {method}", reason="rpc_error"
            )
        return result

    async def block_number(self) -> int:
        (head,) = await self._send([("eth_blockNumber", [])])
        return int(self._plain(head, "eth_blockNumber"), 16)

    async def read(self, calls: BlockCalls, *, timeout: float | None = None) -> list[Any]:
        """Run the reads of one decision against one block, in one batch.

        With `confirmations = 0` a decision made of a single read runs at "latest" in one
        round trip (one read is consistent with itself). Several reads, or any read on a
        chain that wants confirmations, first fix the block number (one more round trip) and
        then run together at that block. Results are values or RpcError (eth_call execution
        failures only: reverts, out of gas, ...).

        `timeout`: a wall-clock cap for the request that carries `calls` (not for fixing the
        block number, a plain read). An RPC that took that request but did not answer it in
        time raises `ExecutionTimeout`; one that could not be reached stays
        `TemporarilyUnavailable`.
        """
        plan = calls("latest")
        if self.config.confirmations == 0 and len(plan) == 1:
            results = await self._send_capped(plan, timeout)
        else:
            head = await self.block_number()
            plan = calls(hex(max(head - self.config.confirmations, 0)))
            results = await self._send_capped(plan, timeout)
        for (method, _), result in zip(plan, results, strict=True):
            if isinstance(result, RpcError) and not (
                method == "eth_call" and result.is_execution_failure
            ):
                self._plain(result, method)
        return results

    async def _send_capped(self, plan: Sequence[RpcCall], timeout: float | None) -> list[Any]:
        if timeout is None:
            return await self._send(plan)
        token = REQUEST_BUDGET.set(timeout)
        try:
            return await self._send(plan)
        except RpcTimedOut:
            # Reached, not answered in time. A choice: with the gas cap bounding an honest
            # node's work on these calls, a node that cannot finish them within the cap is
            # spending the time on the calls' code (a node hung after accepting the request
            # looks the same; its plain reads, e.g. block numbers, are still 503).
            log.info("chain %s: a call capped at %gs timed out", self.chain_id, timeout)
            raise ExecutionTimeout(self.chain_id, timeout) from None
        finally:
            REQUEST_BUDGET.reset(token)

    async def close(self) -> None:
        await self.transport.disconnect()
        if self.embedded is not None:
            self.embedded.close()


def _http_client(config: ChainConfig) -> ChainClient:
    provider = CountingHTTPProvider(
        config.rpc_url, timeout=config.rpc_timeout, chain_id=config.chain_id
    )
    return ChainClient(config, provider, AsyncWeb3(provider))


def embedded_client(config: ChainConfig) -> ChainClient:
    """A ChainClient for a `rpc_url = "embedded"` entry (builds and deploys the chain)."""
    from did_auth.adapters.chain.embedded import EmbeddedTransport, start_embedded_chain

    chain = start_embedded_chain(config.chain_id)
    transport = EmbeddedTransport(chain, timeout=config.rpc_timeout)
    return ChainClient(config, transport, chain.async_w3(config.rpc_timeout), embedded=chain)


class ChainRegistry:
    """The clients of every `[[chains]]` entry, looked up by the chain id a message names."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._clients: dict[int, ChainClient] = {}
        self._started = False

    async def start(self) -> None:
        """Create the clients (no network I/O: remote RPCs are first contacted on use, so a
        chain that is down makes its logins 503, not the server fail to start). Embedded
        chains are built here, with their registries deployed."""
        if self._started:
            return
        # No await below: start() is atomic on the event loop.
        for config in self.settings.chains:
            if config.rpc_url == "embedded":
                client = embedded_client(config)
                chain = client.embedded
                assert chain is not None
                log.info(
                    "embedded chain %s: EthereumDIDRegistry %s, RevocationRegistry %s, "
                    "TestWalletFactory %s",
                    config.chain_id,
                    chain.did_registry,
                    chain.revocation_registry,
                    chain.wallet_factory,
                )
            else:
                client = _http_client(config)
            self._clients[config.chain_id] = client
        self._started = True

    def is_configured(self, chain_id: int) -> bool:
        return self.settings.chain(chain_id) is not None

    def client(self, chain_id: int) -> ChainClient | None:
        """The client of `chain_id`, or None when the chain has no `[[chains]]` entry."""
        client = self._clients.get(chain_id)
        if client is None and self.is_configured(chain_id):
            raise TemporarilyUnavailable("the chain layer is not started", reason="chains_stopped")
        return client

    def require(self, chain_id: int) -> ChainClient:
        client = self.client(chain_id)
        if client is None:
            raise InvalidRequest(f"chain {chain_id} is not configured", reason="chain_unknown")
        return client

    @property
    def clients(self) -> dict[int, ChainClient]:
        return dict(self._clients)

    async def close(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        self._started = False
        for client in clients:
            await client.close()
