"""Contract wallets and SIWE logins for the chain tests.

Signers are written here from the specs, independently of did_auth's code paths:
- EIP-191 hashes come from eth-account's `encode_defunct`;
- a Safe v1.4.1 owner signs the Safe's EIP-712 `SafeMessage` hash (CompatibilityFallbackHandler:
  `getMessageHashForSafe(safe, abi.encode(dataHash))`), computed here in Python;
- EIP-6492 wrapping uses eth-abi directly.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from eth_abi.abi import encode
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_utils.crypto import keccak
from web3 import Web3
from web3.logs import DISCARD

from tests import siwe_text
from tests.fixtures.hardhat import contract_at, deploy, load_test_artifact, transact

MAGIC_6492 = bytes.fromhex("6492" * 16)
ZERO = "0x" + "00" * 20
# keccak256("EIP712Domain(uint256 chainId,address verifyingContract)")
SAFE_DOMAIN_TYPEHASH = keccak(text="EIP712Domain(uint256 chainId,address verifyingContract)")
SAFE_MSG_TYPEHASH = keccak(text="SafeMessage(bytes message)")

Signer = Callable[[str], str]


def personal_hash(text: str) -> bytes:
    """The EIP-191 hash a wallet signs for a SIWE message (eth-account's own computation)."""
    msg = encode_defunct(text=text)
    return keccak(b"\x19" + msg.version + msg.header + msg.body)


def sign_hash(key: str | bytes, digest: bytes) -> bytes:
    return bytes(Account.unsafe_sign_hash(digest, key).signature)


def hex0x(data: bytes) -> str:
    return "0x" + data.hex()


# ----------------------------------------------------------------------------- signers


def eoa_signer(key: str | bytes) -> Signer:
    return lambda text: siwe_text.sign(text, key)


def wallet_signer(owner_key: str | bytes, trailer: bytes = b"") -> Signer:
    """TestERC1271Wallet: the owner's raw signature of the EIP-191 hash (+ trailer bytes)."""
    return lambda text: hex0x(sign_hash(owner_key, personal_hash(text)) + trailer)


def wrap_6492(factory: str, calldata: bytes, inner: bytes) -> bytes:
    return encode(["address", "bytes", "bytes"], [factory, calldata, inner]) + MAGIC_6492


def counterfactual_signer(factory: str, calldata: bytes, owner_key: str | bytes) -> Signer:
    return lambda text: hex0x(
        wrap_6492(factory, calldata, sign_hash(owner_key, personal_hash(text)))
    )


# ------------------------------------------------------------------------------- Safe


@dataclass
class SafeStack:
    """Safe v1.4.1 singleton, proxy factory and fallback handler deployed from the npm
    package's artifacts (tests/fixtures/artifacts)."""

    w3: Web3
    singleton: str
    proxy_factory: str
    handler: str

    def create_safe(self, owners: list[str], threshold: int) -> str:
        safe_abi = contract_at(self.w3, "Safe", self.singleton)
        initializer = safe_abi.encode_abi(
            "setup", args=[owners, threshold, ZERO, b"", self.handler, ZERO, 0, ZERO]
        )
        factory = contract_at(self.w3, "SafeProxyFactory", self.proxy_factory)
        nonce = int.from_bytes(os.urandom(8), "big")
        fn = factory.functions.createProxyWithNonce(self.singleton, initializer, nonce)
        receipt = transact(self.w3, fn)
        event = factory.events.ProxyCreation().process_receipt(receipt, errors=DISCARD)[0]
        return str(event["args"]["proxy"])


def deploy_safe_stack(w3: Web3) -> SafeStack:
    for name in ("Safe", "SafeProxyFactory", "CompatibilityFallbackHandler"):
        assert "@safe-global/safe-contracts@1.4.1" in load_test_artifact(name).source
    return SafeStack(
        w3=w3,
        singleton=deploy(w3, "Safe"),
        proxy_factory=deploy(w3, "SafeProxyFactory"),
        handler=deploy(w3, "CompatibilityFallbackHandler"),
    )


def safe_message_hash(chain_id: int, safe: str, data_hash: bytes) -> bytes:
    """CompatibilityFallbackHandler.getMessageHashForSafe(safe, abi.encode(dataHash))."""
    domain = keccak(
        encode(["bytes32", "uint256", "address"], [SAFE_DOMAIN_TYPEHASH, chain_id, safe])
    )
    message = encode(["bytes32"], [data_hash])
    struct = keccak(encode(["bytes32", "bytes32"], [SAFE_MSG_TYPEHASH, keccak(message)]))
    return keccak(b"\x19\x01" + domain + struct)


def safe_signer(chain_id: int, safe: str, owner_keys: list[str]) -> Signer:
    """Owners' ECDSA signatures (v = 27/28) of the Safe message hash, sorted by owner address
    as Safe.checkNSignatures requires; 65 bytes per owner."""

    def sign(text: str) -> str:
        digest = safe_message_hash(chain_id, safe, personal_hash(text))
        ordered = sorted(owner_keys, key=lambda k: int(Account.from_key(k).address, 16))
        return hex0x(b"".join(sign_hash(k, digest) for k in ordered))

    return sign


# ------------------------------------------------------------------------------ logins


async def nonce(client: httpx.AsyncClient, client_id: str = "dapp") -> str:
    r = await client.post("/siwe/nonce", json={"client_id": client_id})
    assert r.status_code == 200, r.text
    return str(r.json()["nonce"])


async def login(
    client: httpx.AsyncClient,
    address: str,
    signer: Signer,
    *,
    chain_id: int = 31337,
    client_id: str = "dapp",
    domain: str = "localhost:3000",
    uri: str = "http://localhost:3000/login",
    **extra: Any,
) -> httpx.Response:
    """A full SIWE login over HTTP: fresh nonce, hand-written EIP-4361 text, signature."""
    text = siwe_text.message(
        address, await nonce(client, client_id), chain_id=chain_id, domain=domain, uri=uri
    )
    body = {"client_id": client_id, "message": text, "signature": signer(text), **extra}
    return await client.post("/siwe/verify", json=body)


def assert_error(r: httpx.Response, status: int, code: str) -> None:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["error"] == code, body
    assert "Traceback" not in r.text


def new_key() -> str:
    return "0x" + bytes(Account.create().key).hex()


def address_of(key: str) -> str:
    return str(Account.from_key(key).address)
