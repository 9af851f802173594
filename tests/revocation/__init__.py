"""Helpers for the on-chain revocation tests: the registries on the session's
Hardhat node, funded throwaway accounts, EIP-712 revocation signatures (written here from
the EIP-712 spec with eth-account, independently of did_auth's own digest code), and
transactions that record when their block was mined."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.messages import encode_typed_data
from web3 import Web3
from web3.contract import Contract
from web3.contract.contract import ContractFunction

from tests.fixtures.hardhat import HardhatNode, rpc, send

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHAIN_ID = 31337
HEX_CHAIN = "0x7a69"
RS_NAME = "trading-api"
RS_SECRET = "revocation-tests-rs-secret"
SIG_AUTH = b"sigAuth".ljust(32, b"\0")

TYPES = {
    "Revoke": [
        {"name": "account", "type": "address"},
        {"name": "id", "type": "bytes32"},
        {"name": "nonce", "type": "uint256"},
        {"name": "deadline", "type": "uint256"},
    ],
    "RevokeAll": [
        {"name": "account", "type": "address"},
        {"name": "nonce", "type": "uint256"},
        {"name": "deadline", "type": "uint256"},
    ],
}


def new_key() -> str:
    return "0x" + os.urandom(32).hex()


def address_of(key: str) -> str:
    return str(Account.from_key(key).address)


def key_id(address: str) -> bytes:
    """The registry id of a key: its address left-padded to 32 bytes."""
    return b"\0" * 12 + bytes.fromhex(address[2:])


@dataclass
class Mined:
    receipt: Any
    at: float  # time.perf_counter() right after the node answered eth_sendRawTransaction


@dataclass
class RevChain:
    """The session's Hardhat node with a RevocationRegistry and an ERC-1056 registry."""

    node: HardhatNode
    w3: Web3
    registry: Contract
    did: Contract
    admin_key: str  # DEFAULT_ADMIN_ROLE + OPERATOR_ROLE
    funder_key: str
    relayer_key: str
    funded: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.node.url

    def chain_config(self, **over: Any) -> dict[str, Any]:
        cfg: dict[str, Any] = {
            "chain_id": CHAIN_ID,
            "rpc_url": self.node.url,
            "revocation_registry": self.registry.address,
            "did_registry": self.did.address,
            "watch_interval": 0.2,
        }
        cfg.update(over)
        return cfg

    def now(self) -> int:
        return int(self.w3.eth.get_block("latest")["timestamp"])

    def head(self) -> int:
        return int(self.w3.eth.block_number)

    def mine(self, n: int = 1) -> None:
        for _ in range(n):
            rpc(self.node.url, "evm_mine", [])

    def account(self, *, funded: bool = True) -> str:
        """A fresh private key; funded with 1 ETH when it must pay for transactions."""
        key = new_key()
        if funded:
            send(
                self.w3,
                {"to": address_of(key), "value": 10**18, "gas": 21_000},
                self.funder_key,
            )
        return key

    def tx(self, fn: ContractFunction, key: str) -> Mined:
        """Send `fn` signed by `key`; returns the receipt and when the block was mined
        (Hardhat automines inside eth_sendRawTransaction)."""
        sender = address_of(key)
        tx: dict[str, Any] = dict(fn.build_transaction({"from": sender}))
        tx["gas"] = min(int(tx["gas"]) * 5 // 4 + 20_000, 16_000_000)
        tx["nonce"] = self.w3.eth.get_transaction_count(sender, "pending")  # type: ignore[arg-type]
        base = int(self.w3.eth.get_block("latest").get("baseFeePerGas", 0))
        tx["maxPriorityFeePerGas"] = 1
        tx["maxFeePerGas"] = 2 * base + 1
        tx.pop("gasPrice", None)
        signed = Account.sign_transaction(tx, key)
        tx_hash = self.w3.eth.send_raw_transaction(signed.raw_transaction)
        at = time.perf_counter()
        receipt = self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=30)
        assert receipt["status"] == 1, receipt
        return Mined(receipt, at)

    # RevocationRegistry -------------------------------------------------------------

    def revoke_all(self, key: str) -> Mined:
        return self.tx(self.registry.functions.revokeAll(), key)

    def revoke(self, key: str, id_: bytes | str) -> Mined:
        raw = bytes.fromhex(id_[2:]) if isinstance(id_, str) else id_
        return self.tx(self.registry.functions.revoke(raw), key)

    def suspend(self, account: str) -> Mined:
        return self.tx(self.registry.functions.suspend(account), self.admin_key)

    def unsuspend(self, account: str) -> Mined:
        return self.tx(self.registry.functions.unsuspend(account), self.admin_key)

    def sign(
        self, key: str, *, id_: bytes | None = None, deadline: int | None = None,
        nonce: int | None = None,
    ) -> tuple[int, str]:
        """An EOA's EIP-712 Revoke (with `id_`) or RevokeAll signature: (deadline, 0x-sig)."""
        account = address_of(key)
        if nonce is None:
            nonce = int(self.registry.functions.nonces(account).call())
        if deadline is None:
            deadline = self.now() + 3600
        domain = {
            "name": "did-auth RevocationRegistry",
            "version": "1",
            "chainId": CHAIN_ID,
            "verifyingContract": self.registry.address,
        }
        if id_ is None:
            primary, message = "RevokeAll", {"account": account, "nonce": nonce, "deadline": deadline}
        else:
            primary = "Revoke"
            message = {"account": account, "id": id_, "nonce": nonce, "deadline": deadline}
        signable = encode_typed_data(
            domain_data=domain, message_types={primary: TYPES[primary]}, message_data=message
        )
        return deadline, "0x" + bytes(Account.sign_message(signable, key).signature).hex()

    # ERC-1056 -----------------------------------------------------------------------

    def add_delegate(self, owner_key: str, identity: str, delegate: str, validity: int) -> Mined:
        fn = self.did.functions.addDelegate(identity, SIG_AUTH, delegate, validity)
        return self.tx(fn, owner_key)

    def revoke_delegate(self, owner_key: str, identity: str, delegate: str) -> Mined:
        return self.tx(self.did.functions.revokeDelegate(identity, SIG_AUTH, delegate), owner_key)

    def change_owner(self, owner_key: str, identity: str, new_owner: str) -> Mined:
        return self.tx(self.did.functions.changeOwner(identity, new_owner), owner_key)


def ethr_did(address: str) -> str:
    return f"did:ethr:{HEX_CHAIN}:{address}"


def pkh_did(address: str, chain_id: int = CHAIN_ID) -> str:
    return f"did:pkh:eip155:{chain_id}:{address}"


def record_latency(
    label: str,
    seconds: float,
    what: str = "mined block -> first rejection at the trading API",
) -> str:
    """Print and append one measured latency to test-artifacts/revocation_latency.txt."""
    line = f"{label}: {seconds * 1000:.0f} ms ({what})"
    print(f"\n[revocation latency] {line}", flush=True)
    ARTIFACTS.mkdir(exist_ok=True)
    with (ARTIFACTS / "revocation_latency.txt").open("a") as f:
        f.write(time.strftime("%Y-%m-%dT%H:%M:%SZ ", time.gmtime()) + line + "\n")
    return line
