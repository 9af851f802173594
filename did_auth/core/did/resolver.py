"""DID resolution (W3C DID Core §7.1 "DID Resolution") for did:ethr, did:pkh and did:key.

`parse_did` checks the syntax (DID Core §3.1: `did = "did:" method-name ":"
method-specific-id`; the DID here must be a bare DID, not a DID URL with path, query or
fragment); `DidResolver` dispatches by method. did:pkh and did:key resolve without a
network; did:ethr reads the ERC-1056 registry of its chain through a `ChainReader`.

`ChainReader` (`did_auth.core.did.chain_reader`) is the only seam to a chain; any
`web3.AsyncWeb3` plugs in through `did_auth.adapters.chain.did_reader.Web3ChainReader`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

from did_auth.core.did.chain_reader import BlockId, ChainReader
from did_auth.core.did.document import Resolution
from did_auth.core.did.ethr import EthrDid, EthrResolver, parse_did_ethr
from did_auth.core.did.key import KeyDid, parse_did_key, resolve_did_key
from did_auth.core.did.pkh import PkhDid, parse_did_pkh, resolve_did_pkh
from did_auth.core.errors import InvalidRequest

if TYPE_CHECKING:
    from did_auth.config.settings import Settings

__all__ = [
    "BlockId",
    "ChainReader",
    "DidResolver",
    "EthrRegistries",
    "ParsedDid",
    "parse_did",
]

ParsedDid = EthrDid | PkhDid | KeyDid

MAX_DID_CHARS = 256


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


class EthrRegistries(Protocol):
    """Where the did:ethr resolver of a chain comes from when it is known only once the
    chain has started (an embedded chain deploys its ERC-1056 registry at start-up):
    `did_auth.adapters.chain.did_reader.ChainDidRegistries`."""

    def ethr_resolver(self, chain_id: int) -> EthrResolver | None: ...


class DidResolver:
    """Dispatch by method. `ethr` maps chain ids to the resolver of that chain's registry;
    `registries`, when given, serves the chains `ethr` does not name (each looked up once
    it answers, then kept in `ethr`)."""

    def __init__(
        self,
        ethr: Mapping[int, EthrResolver] | None = None,
        registries: EthrRegistries | None = None,
    ) -> None:
        self.ethr: dict[int, EthrResolver] = dict(ethr or {})
        self.registries = registries

    def _ethr(self, chain_id: int) -> EthrResolver | None:
        resolver = self.ethr.get(chain_id)
        if resolver is None and self.registries is not None:
            resolver = self.registries.ethr_resolver(chain_id)
            if resolver is not None:
                self.ethr[chain_id] = resolver
        return resolver

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        readers: Mapping[int, ChainReader],
        registries: Mapping[int, str] | None = None,
        late: EthrRegistries | None = None,
        **kw: Any,
    ) -> DidResolver:
        """One `EthrResolver` per `[[chains]]` entry that has a reader and an ERC-1056
        registry: its `did_registry`, or the address in `registries` (e.g. the registry an
        embedded chain deployed at start-up), which wins when both are given; `late` serves
        the other chains (`DidResolver.registries`)."""
        resolver = cls(registries=late)
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
        if isinstance(parsed, EthrDid) and self._ethr(parsed.chain_id) is None:
            raise InvalidRequest(
                f"did:ethr on chain {parsed.chain_id} is not supported here: the chain has no "
                "configured ERC-1056 registry",
                reason="did_chain",
            )
        return parsed

    async def resolve(self, did: str | ParsedDid, *, now: float | None = None) -> Resolution:
        parsed = self.parse(did) if isinstance(did, str) else did
        if isinstance(parsed, EthrDid):
            resolver = self._ethr(parsed.chain_id)
            if resolver is None:
                raise InvalidRequest("did:ethr chain is not configured", reason="did_chain")
            return await resolver.resolve(parsed, now=now)
        if isinstance(parsed, PkhDid):
            return resolve_did_pkh(parsed)
        return resolve_did_key(parsed)
