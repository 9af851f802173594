"""Helpers for the DID tests: identities on the Hardhat node, ERC-1056 registry calls, a
call-counting ChainReader, and the Node interop script (tests/interop/did_tools.mjs)."""

from __future__ import annotations

import json
import secrets
import subprocess
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_account import Account
from web3 import Web3

from did_auth.core.did.chain_reader import BlockId, ChainReader
from tests.fixtures.hardhat import contract_at, rpc, transact

ROOT = Path(__file__).resolve().parents[3]
DID_TOOLS = ROOT / "tests" / "interop" / "did_tools.mjs"
CHAIN_ID = 31337
HEX_CHAIN = "0x7a69"


@dataclass(frozen=True)
class Key:
    """A secp256k1 key pair (an Ethereum account)."""

    private: bytes

    @classmethod
    def new(cls) -> Key:
        return cls(secrets.token_bytes(32))

    @property
    def hex(self) -> str:
        return "0x" + self.private.hex()

    @property
    def address(self) -> str:
        return str(Account.from_key(self.private).address)

    @property
    def public_compressed(self) -> str:
        from coincurve import PrivateKey

        return "0x" + PrivateKey(self.private).public_key.format(compressed=True).hex()

    @property
    def ethr(self) -> str:
        return f"did:ethr:{HEX_CHAIN}:{self.address}"


def b32(text: str) -> bytes:
    return text.encode().ljust(32, b"\0")


class Registry:
    """Transactions on the ERC-1056 registry, each signed by the identity's current owner."""

    def __init__(self, w3: Web3, node_url: str, address: str) -> None:
        self.w3 = w3
        self.node_url = node_url
        self.address = address
        self.contract = contract_at(w3, "EthereumDIDRegistry", address)

    def fund(self, *keys: Key) -> None:
        for k in keys:
            rpc(self.node_url, "hardhat_setBalance", [k.address, hex(10**20)])

    def _tx(self, owner: Key, fn: Any) -> None:
        self.fund(owner)
        transact(self.w3, fn, owner.hex)

    def add_delegate(
        self, owner: Key, identity: str, kind: str, delegate: str, validity: int
    ) -> None:
        self._tx(
            owner, self.contract.functions.addDelegate(identity, b32(kind), delegate, validity)
        )

    def revoke_delegate(self, owner: Key, identity: str, kind: str, delegate: str) -> None:
        self._tx(owner, self.contract.functions.revokeDelegate(identity, b32(kind), delegate))

    def set_attribute(
        self, owner: Key, identity: str, name: str, value: bytes, validity: int
    ) -> None:
        self._tx(owner, self.contract.functions.setAttribute(identity, b32(name), value, validity))

    def revoke_attribute(self, owner: Key, identity: str, name: str, value: bytes) -> None:
        self._tx(owner, self.contract.functions.revokeAttribute(identity, b32(name), value))

    def change_owner(self, owner: Key, identity: str, new_owner: str) -> None:
        self._tx(owner, self.contract.functions.changeOwner(identity, new_owner))

    def chain_time(self) -> int:
        return int(self.w3.eth.get_block("latest")["timestamp"])

    def block_number(self) -> int:
        return int(self.w3.eth.block_number)

    def mine(self) -> None:
        rpc(self.node_url, "evm_mine", [])

    def advance(self, seconds: int) -> None:
        """Move chain time forward and mine a block at the new time."""
        rpc(self.node_url, "evm_increaseTime", [seconds])
        rpc(self.node_url, "evm_mine", [])


class CountingReader:
    """Wraps a ChainReader and counts calls by kind (a warm resolution must cost one)."""

    def __init__(self, inner: ChainReader) -> None:
        self.inner = inner
        self.calls: Counter[str] = Counter()

    @property
    def total(self) -> int:
        return sum(self.calls.values())

    def reset(self) -> None:
        self.calls.clear()

    async def block(self, block: BlockId = "latest") -> tuple[int, int]:
        self.calls["block"] += 1
        return await self.inner.block(block)

    async def call(self, to: str | None, data: bytes, block: BlockId = "latest") -> bytes:
        self.calls["call"] += 1
        return await self.inner.call(to, data, block)

    async def logs(
        self, address: str, topics: Sequence[str | None], block: int
    ) -> list[dict[str, Any]]:
        self.calls["logs"] += 1
        return await self.inner.logs(address, topics, block)


def run_js(ops: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Run ops through tests/interop/did_tools.mjs (one Node process for the batch)."""
    out = subprocess.run(
        ["node", str(DID_TOOLS)],
        input=json.dumps({"ops": ops}),
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    if out.returncode != 0:
        raise RuntimeError(f"did_tools.mjs failed ({out.returncode}): {out.stderr}")
    results: list[dict[str, Any]] = json.loads(out.stdout)["results"]
    return results


def normalise(doc: dict[str, Any]) -> dict[str, Any]:
    """A DID document with every list sorted, so documents compare regardless of order."""
    out: dict[str, Any] = {}
    for k, v in doc.items():
        if k == "@context":
            continue
        if isinstance(v, list):
            out[k] = sorted(v, key=lambda x: json.dumps(x, sort_keys=True))
        else:
            out[k] = v
    return out


async def make_login(
    settings: Any,
    clock: Any,
    readers: dict[int, ChainReader] | None = None,
    resolver: Any = None,
) -> tuple[Any, Any]:
    """(DidLogin, Services) over an in-memory store, wired as `build_did_login` does."""
    from did_auth.adapters.store.memory import MemoryStore
    from did_auth.core.flows.did_login import build_did_login
    from did_auth.services import build_services

    svc = build_services(settings, clock=clock, store=MemoryStore())
    await svc.start()
    login = build_did_login(
        settings, svc.store, clock, svc.issuer, svc.sessions, svc.otp, readers or {}
    )
    if resolver is not None:
        login.resolver = resolver
    return login, svc


def claims_of(token: str) -> dict[str, Any]:
    import jwt

    out: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return out
