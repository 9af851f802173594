"""A Safe (EIP-1271) approves a withdrawal on the Hardhat node: the SIWE login, then the
EIP-712 withdrawal signed by the Safe's owner(s) the way Safe v1.4.1 checks it
(CompatibilityFallbackHandler: `isValidSignature(bytes32, bytes)` over
`getMessageHashForSafe(safe, abi.encode(digest))`), through the same chain layer as logins.
Also a counterfactual (EIP-6492) wallet, which is never deployed.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import jwt
import pytest
from web3 import Web3

from did_auth.services import Services
from tests.adapters.chain.wallets import (
    SafeStack,
    address_of,
    deploy_safe_stack,
    hex0x,
    new_key,
    safe_message_hash,
    safe_signer,
    sign_hash,
    wrap_6492,
)
from tests.fixtures.hardhat import HardhatNode, contract_at, deploy
from tests.fixtures.servers import CLIENT, running_app, settings_for
from tests.withdrawals import Session, details, login, typed_digest

HARDHAT = 31337
Api = tuple[httpx.AsyncClient, Services]


@pytest.fixture(scope="module")
def safe_stack(hardhat_w3: Web3) -> SafeStack:
    return deploy_safe_stack(hardhat_w3)


@pytest.fixture(scope="module")
async def app(hardhat_node: HardhatNode) -> AsyncIterator[Api]:
    settings = settings_for(
        chains=[{"chain_id": HARDHAT, "rpc_url": hardhat_node.url}],
        clients=[{**CLIENT, "chain_ids": [HARDHAT]}],
    )
    async with running_app(settings) as pair:
        yield pair


def safe_typed_signer(safe: str, owners: list[str]) -> Callable[[dict[str, Any]], str]:
    """The owners' ECDSA signatures (sorted by owner address) of the Safe message hash of
    the EIP-712 digest, written here from the Safe contracts, not from did-auth."""

    def sign(data: dict[str, Any]) -> str:
        m = data["message"]
        d = {k: m[k] for k in ("audience", "asset", "amount", "destination", "network")}
        digest = typed_digest(d, m["nonce"], m["expiresAt"], data["domain"]["chainId"])
        safe_hash = safe_message_hash(HARDHAT, safe, digest)
        ordered = sorted(owners, key=lambda k: int(address_of(k), 16))
        return hex0x(b"".join(sign_hash(k, safe_hash) for k in ordered))

    return sign


async def test_a_safe_approves_a_withdrawal(
    app: Api, safe_stack: SafeStack, hardhat_w3: Web3
) -> None:
    client, _ = app
    keys = [new_key() for _ in range(3)]
    safe = safe_stack.create_safe([address_of(k) for k in keys], 2)  # a 2-of-3 Safe
    s: Session = await login(client, address=safe, key=bytes.fromhex(keys[0][2:]),
                             sign_message=safe_signer(HARDHAT, safe, keys[:2]))
    s.sign = safe_typed_signer(safe, keys[:2])
    await s.enrol_otp()
    body = await s.approval_body()
    # The Safe itself says the signature is valid for the digest (EIP-1271 magic value).
    m = body["authorization_details"][0]
    digest = typed_digest(m, body["nonce"], body["expires_at"], HARDHAT)
    as_1271 = contract_at(hardhat_w3, "CompatibilityFallbackHandler", safe)
    answer = as_1271.functions.isValidSignature(digest, bytes.fromhex(body["signature"][2:]))
    assert bytes(answer.call()) == bytes.fromhex("1626ba7e")
    # One owner of a 2-of-3 Safe is not the Safe: refused, and nothing used up.
    one_owner = {**body, "signature": safe_typed_signer(safe, keys[:1])(
        _typed(body))}
    r = await s.authorize(one_owner)
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant", r.text
    r = await s.authorize(body)
    assert r.status_code == 200, r.text
    claims = jwt.decode(r.json()["access_token"], options={"verify_signature": False})
    assert claims["sub"] == f"did:pkh:eip155:{HARDHAT}:{safe}"
    assert claims["authorization_details"] == [details()]
    assert claims["amr"] == ["siwe", "otp", "mfa"]


async def test_a_safe_signature_for_another_chain_is_refused(
    app: Api, safe_stack: SafeStack
) -> None:
    client, _ = app
    owner = new_key()
    safe = safe_stack.create_safe([address_of(owner)], 1)
    s = await login(client, address=safe, key=bytes.fromhex(owner[2:]),
                    sign_message=safe_signer(HARDHAT, safe, [owner]))
    s.sign = safe_typed_signer(safe, [owner])
    await s.enrol_otp()
    r = await s.authorize(await s.approval_body(chain_id=1))
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant", r.text


async def test_a_counterfactual_wallet_approves_without_being_deployed(
    app: Api, hardhat_w3: Web3
) -> None:
    """EIP-6492: the wallet's factory call and the inner EIP-1271 signature in one
    deployless eth_call; the wallet stays undeployed."""
    client, _ = app
    factory = deploy(hardhat_w3, "TestWalletFactory")
    owner = new_key()
    f = contract_at(hardhat_w3, "TestWalletFactory", factory)
    salt = os.urandom(32)
    address = f.functions.computeAddress(address_of(owner), salt).call()
    calldata = bytes.fromhex(f.encode_abi("deploy", args=[address_of(owner), salt])[2:])

    def sign_text(text: str) -> str:
        from tests.adapters.chain.wallets import personal_hash

        return hex0x(wrap_6492(factory, calldata, sign_hash(owner, personal_hash(text))))

    def sign_typed(data: dict[str, Any]) -> str:
        inner = sign_hash(owner, _digest_of(data))  # TestERC1271Wallet: the owner's raw sig
        return hex0x(wrap_6492(factory, calldata, inner))

    s = await login(client, address=address, key=bytes.fromhex(owner[2:]),
                    sign_message=sign_text)
    s.sign = sign_typed
    await s.enrol_otp()
    r = await s.authorize(await s.approval_body())
    assert r.status_code == 200, r.text
    assert hardhat_w3.eth.get_code(Web3.to_checksum_address(address)) == b""


def _digest_of(data: dict[str, Any]) -> bytes:
    m = data["message"]
    d = {k: m[k] for k in ("audience", "asset", "amount", "destination", "network")}
    return typed_digest(d, m["nonce"], m["expiresAt"], data["domain"]["chainId"])


def _typed(body: dict[str, Any]) -> dict[str, Any]:
    from tests.withdrawals import typed_data

    return typed_data(body["authorization_details"][0], body["nonce"], body["expires_at"],
                      HARDHAT)
