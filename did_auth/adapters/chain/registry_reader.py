"""RevocationRegistry reads: pinned `status(account, ids)` for the login, refresh and
introspection checks.

`RegistryReader` implements `did_auth.core.flows.registry_checks.RegistryStatusReader`: one
decision = one `status(account, ids)` `eth_call` (suspended, revokedBefore and a revoked
flag per id, all from one block), sent through `ChainClient.read`, so it is pinned to
`head - confirmations` and fails closed (`TemporarilyUnavailable`) when the RPC cannot answer,
when the call reverts, or when the registry answers nothing decodable (no code there).
With `confirmations = 0` it costs one round trip; otherwise two (`eth_blockNumber`, then
the call at that block).

The reader, the relayer and the watchers each use their *own* `ChainClient` per chain
(`dedicated_client`: own connection pool, own `rpc_round_trips`), so that the signature
checks' round-trip budget (README-chain) stays what it was; on the embedded chain they
share the one in-process EVM.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import Final

from eth_abi.abi import decode, encode
from web3 import AsyncWeb3

from did_auth.adapters.chain.client import (
    ChainClient,
    ChainRegistry,
    CountingHTTPProvider,
    RpcCall,
    RpcError,
)
from did_auth.adapters.chain.registry_events import as_bytes
from did_auth.config.settings import ChainConfig
from did_auth.core.errors import InvalidRequest, TemporarilyUnavailable
from did_auth.core.flows.registry_checks import RegistryState
from did_auth.core.signatures.eip191 import keccak256

__all__ = ["ADDRESS", "BYTES32", "RegistryReader", "dedicated_client", "registry_addresses"]

log = logging.getLogger("did_auth.adapters.chain.registries")

_STATUS: Final = keccak256(b"status(address,bytes32[])")[:4]
ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
BYTES32 = re.compile(r"^0x[0-9a-fA-F]{64}$")
_MAX_IDS = 16


# ------------------------------------------------------------------------------ clients


def dedicated_client(chains: ChainRegistry, config: ChainConfig) -> ChainClient:
    """A ChainClient of its own for `config` (own pool and round-trip count). The embedded
    chain is shared: a second transport over the same in-process EVM. Needs `chains`
    started for embedded chains (else `TemporarilyUnavailable`)."""
    if config.rpc_url == "embedded":
        from did_auth.adapters.chain.embedded import EmbeddedTransport

        base = chains.client(config.chain_id)
        if base is None or base.embedded is None:  # pragma: no cover - configured chain
            raise TemporarilyUnavailable("the embedded chain is not running", reason="chains")
        return ChainClient(config, EmbeddedTransport(base.embedded), base.w3)
    provider = CountingHTTPProvider(
        config.rpc_url, timeout=config.rpc_timeout, chain_id=config.chain_id
    )
    return ChainClient(config, provider, AsyncWeb3(provider))


def registry_addresses(chains: ChainRegistry, config: ChainConfig) -> tuple[str | None, str | None]:
    """(RevocationRegistry, ERC-1056 registry) of a chain: configured, else the embedded
    chain's own deployments."""
    revocation, did = config.revocation_registry, config.did_registry
    if config.rpc_url == "embedded" and (revocation is None or did is None):
        base = chains.client(config.chain_id)
        if base is not None:
            revocation = revocation or base.revocation_registry
            did = did or base.did_registry
    return revocation, did


def _word(data: bytes, i: int) -> bytes:
    return data[32 * i : 32 * (i + 1)]


# ------------------------------------------------------------------------------- reader


class RegistryReader:
    """`status(account, ids)` of each configured chain's RevocationRegistry."""

    def __init__(self, chains: ChainRegistry) -> None:
        self.chains = chains
        self.settings = chains.settings
        self._clients: dict[int, ChainClient] = {}

    def has_registry(self, chain_id: int) -> bool:
        config = self.settings.chain(chain_id)
        return config is not None and (
            config.revocation_registry is not None or config.rpc_url == "embedded"
        )

    def authority(self, chain_id: int) -> int | None:
        """The chain whose RevocationRegistry governs accounts on `chain_id` (settings
        `revocation_registry_for`), else None."""
        return self.settings.revocation_authority(chain_id)

    def any_registry(self) -> bool:
        return self.settings.has_revocation_registries

    def registry_address(self, chain_id: int) -> str | None:
        config = self.settings.chain(chain_id)
        if config is None:
            return None
        return registry_addresses(self.chains, config)[0]

    def client(self, chain_id: int) -> ChainClient:
        client = self._clients.get(chain_id)
        if client is None:
            config = self.settings.chain(chain_id)
            if config is None:
                raise InvalidRequest(f"chain {chain_id} is not configured", reason="chain_unknown")
            client = self._clients[chain_id] = dedicated_client(self.chains, config)
        return client

    @property
    def rpc_round_trips(self) -> int:
        return sum(c.rpc_round_trips for c in self._clients.values())

    async def status(self, chain_id: int, account: str, ids: Sequence[str]) -> RegistryState:
        registry = self.registry_address(chain_id)
        if registry is None:
            raise InvalidRequest(
                f"chain {chain_id} has no revocation registry", reason="no_registry"
            )
        if not ADDRESS.match(account):
            raise InvalidRequest("not an account address", reason="account")
        wanted = [i.lower() for i in ids if BYTES32.match(i)][:_MAX_IDS]
        data = "0x" + (
            _STATUS
            + encode(["address", "bytes32[]"], [account, [bytes.fromhex(i[2:]) for i in wanted]])
        ).hex()

        def calls(tag: str) -> Sequence[RpcCall]:
            return [("eth_call", [{"to": registry, "data": data}, tag])]

        (result,) = await self.client(chain_id).read(calls)
        if isinstance(result, RpcError) or not isinstance(result, str):
            log.warning("chain %s: RevocationRegistry.status reverted", chain_id)
            raise TemporarilyUnavailable(
                f"the revocation registry of chain {chain_id} did not answer",
                reason="registry_revert",
            )
        try:
            suspended, before, flags = decode(["bool", "uint256", "bool[]"], as_bytes(result))
        except Exception:
            log.warning("chain %s: RevocationRegistry.status answered no valid data", chain_id)
            raise TemporarilyUnavailable(
                f"the revocation registry of chain {chain_id} did not answer",
                reason="registry_no_data",
            ) from None
        if len(flags) != len(wanted):
            raise TemporarilyUnavailable(
                f"the revocation registry of chain {chain_id} answered inconsistently",
                reason="registry_bad_data",
            )
        return RegistryState(
            chain_id=chain_id,
            account=account.lower(),
            suspended=bool(suspended),
            revoked_before=int(before),
            revoked={i: bool(f) for i, f in zip(wanted, flags, strict=True)},
        )

    async def close(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.close()


