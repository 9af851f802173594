"""SIWE logins over HTTP from EOAs and contract wallets, verified on the Hardhat node.

One in-process did-auth serves four chains: 31337 (the session's Hardhat node), 1337 (the
embedded py-evm chain: "another chain" where the wallets have no code), 999 (an RPC on a
closed port: "down") and 1 (allowed for the client, but with no `[[chains]]` entry).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import httpx
import jwt
import pytest
from eth_abi.abi import encode
from web3 import Web3

from did_auth.services import Services
from tests import siwe_text
from tests.adapters.chain.wallets import (
    SafeStack,
    Signer,
    address_of,
    assert_error,
    counterfactual_signer,
    deploy_safe_stack,
    eoa_signer,
    hex0x,
    login,
    new_key,
    nonce,
    personal_hash,
    safe_message_hash,
    safe_signer,
    sign_hash,
    wallet_signer,
    wrap_6492,
)
from tests.fixtures.hardhat import HardhatNode, contract_at, deploy
from tests.fixtures.redis_server import free_port
from tests.fixtures.servers import CLIENT, running_app, settings_for

HARDHAT, OTHER, DOWN, UNCONFIGURED, NOT_ALLOWED = 31337, 1337, 999, 1, 5
Api = tuple[httpx.AsyncClient, Services]


@pytest.fixture(scope="module")
def safe_stack(hardhat_w3: Web3) -> SafeStack:
    return deploy_safe_stack(hardhat_w3)


@pytest.fixture(scope="module")
def factory(hardhat_w3: Web3) -> str:
    return deploy(hardhat_w3, "TestWalletFactory")


@pytest.fixture(scope="module")
async def app(hardhat_node: HardhatNode) -> AsyncIterator[Api]:
    settings = settings_for(
        chains=[
            {"chain_id": HARDHAT, "rpc_url": hardhat_node.url},
            # The embedded chain's RevocationRegistry governs the accounts of every chain
            # the client allows (a client may not allow a chain no registry governs).
            {"chain_id": OTHER, "rpc_url": "embedded",
             "revocation_registry_for": [UNCONFIGURED, HARDHAT, DOWN]},
            {"chain_id": DOWN, "rpc_url": f"http://127.0.0.1:{free_port()}", "rpc_timeout": 2},
        ],
        clients=[{**CLIENT, "chain_ids": [UNCONFIGURED, HARDHAT, OTHER, DOWN]}],
    )
    async with running_app(settings) as pair:
        yield pair


@dataclass
class Wallet:
    kind: str
    address: str
    sign: Signer  # the right signer(s)
    wrong: Signer  # a key that does not control the wallet


WalletFactory = Callable[[str], Wallet]


@pytest.fixture
def make_wallet(hardhat_w3: Web3, safe_stack: SafeStack, factory: str) -> WalletFactory:
    """A fresh wallet of `kind` on the Hardhat node, with its signer and a wrong signer."""

    def make(kind: str) -> Wallet:
        owner, stranger = new_key(), new_key()
        if kind == "eoa":
            return Wallet(kind, address_of(owner), eoa_signer(owner), eoa_signer(stranger))
        if kind == "safe":
            safe = safe_stack.create_safe([address_of(owner)], 1)
            return Wallet(
                kind,
                safe,
                safe_signer(HARDHAT, safe, [owner]),
                safe_signer(HARDHAT, safe, [stranger]),
            )
        if kind == "erc1271":
            wallet = deploy(hardhat_w3, "TestERC1271Wallet", address_of(owner), 0)
            return Wallet(kind, wallet, wallet_signer(owner), wallet_signer(stranger))
        if kind == "long":
            trailer = os.urandom(48)
            wallet = deploy(hardhat_w3, "TestERC1271Wallet", address_of(owner), len(trailer))
            return Wallet(
                kind, wallet, wallet_signer(owner, trailer), wallet_signer(stranger, trailer)
            )
        if kind == "6492":
            f = contract_at(hardhat_w3, "TestWalletFactory", factory)
            salt = os.urandom(32)
            address = f.functions.computeAddress(address_of(owner), salt).call()
            calldata = bytes.fromhex(f.encode_abi("deploy", args=[address_of(owner), salt])[2:])
            assert hardhat_w3.eth.get_code(address) == b""
            return Wallet(
                kind,
                address,
                counterfactual_signer(factory, calldata, owner),
                counterfactual_signer(factory, calldata, stranger),
            )
        raise AssertionError(kind)

    return make


CONTRACT_KINDS = ["safe", "erc1271", "long", "6492"]
ALL_KINDS = ["eoa", *CONTRACT_KINDS]


def sub_of(r: httpx.Response) -> str:
    assert r.status_code == 200, r.text
    claims = jwt.decode(r.json()["access_token"], options={"verify_signature": False})
    return str(claims["sub"])


# ------------------------------------------------------------------------------ success


@pytest.mark.parametrize("kind", ALL_KINDS)
async def test_login_succeeds(app: Api, make_wallet: WalletFactory, kind: str) -> None:
    client, _ = app
    wallet = make_wallet(kind)
    r = await login(client, wallet.address, wallet.sign)
    assert sub_of(r) == f"did:pkh:eip155:{HARDHAT}:{wallet.address}"


async def test_safe_message_hash_matches_the_fallback_handler(
    hardhat_w3: Web3, safe_stack: SafeStack
) -> None:
    """The owner signs what Safe v1.4.1 itself computes, and the Safe itself says valid."""
    owner = new_key()
    safe = safe_stack.create_safe([address_of(owner)], 1)
    digest = personal_hash("any SIWE text")
    handler = contract_at(hardhat_w3, "CompatibilityFallbackHandler", safe_stack.handler)
    on_chain = handler.functions.getMessageHashForSafe(safe, encode(["bytes32"], [digest])).call()
    assert bytes(on_chain) == safe_message_hash(HARDHAT, safe, digest)
    as_1271 = contract_at(hardhat_w3, "CompatibilityFallbackHandler", safe)  # via fallback
    sig = bytes.fromhex(safe_signer(HARDHAT, safe, [owner])("any SIWE text")[2:])
    assert bytes(as_1271.functions.isValidSignature(digest, sig).call()) == bytes.fromhex(
        "1626ba7e"
    )


async def test_safe_two_of_three_owners(app: Api, safe_stack: SafeStack) -> None:
    """A 2-of-3 Safe signs with 130 bytes: both owners' signatures reach the Safe."""
    client, _ = app
    keys = [new_key() for _ in range(3)]
    safe = safe_stack.create_safe([address_of(k) for k in keys], 2)
    r = await login(client, safe, safe_signer(HARDHAT, safe, keys[:2]))
    assert sub_of(r) == f"did:pkh:eip155:{HARDHAT}:{safe}"
    r = await login(client, safe, safe_signer(HARDHAT, safe, keys[:1]))
    assert_error(r, 400, "invalid_grant")


async def test_counterfactual_wallet_stays_undeployed(
    app: Api, make_wallet: WalletFactory, hardhat_w3: Web3
) -> None:
    client, _ = app
    wallet = make_wallet("6492")
    assert sub_of(await login(client, wallet.address, wallet.sign))
    # validated in an eth_call only: nothing was deployed
    assert hardhat_w3.eth.get_code(Web3.to_checksum_address(wallet.address)) == b""


async def test_counterfactual_long_signature_wallet(
    app: Api, hardhat_w3: Web3, factory: str
) -> None:
    """EIP-6492 around an inner signature longer than 65 bytes: nothing is truncated."""
    client, _ = app
    owner, trailer = new_key(), os.urandom(31)
    f = contract_at(hardhat_w3, "TestWalletFactory", factory)
    salt = os.urandom(32)
    owner_address = address_of(owner)
    address = f.functions.computeAddressWithTrailer(owner_address, len(trailer), salt).call()
    calldata = bytes.fromhex(
        f.encode_abi("deployWithTrailer", args=[owner_address, len(trailer), salt])[2:]
    )

    def sign(text: str) -> str:
        return hex0x(wrap_6492(factory, calldata, sign_hash(owner, personal_hash(text)) + trailer))

    assert sub_of(await login(client, address, sign))


async def test_long_signature_is_not_truncated(app: Api, make_wallet: WalletFactory) -> None:
    client, _ = app
    wallet = make_wallet("long")

    def truncated(text: str) -> str:
        return wallet.sign(text)[: 2 + 130]

    assert_error(await login(client, wallet.address, truncated), 400, "invalid_grant")
    assert sub_of(await login(client, wallet.address, wallet.sign))


async def test_owner_key_is_not_the_wallet(app: Api, make_wallet: WalletFactory) -> None:
    """The owner's plain EOA login signature does not log in as the wallet."""
    client, _ = app
    owner = new_key()
    wallet = make_wallet("erc1271")
    r = await login(client, wallet.address, eoa_signer(owner))
    assert_error(r, 400, "invalid_grant")


# ------------------------------------------------------------------------------ failures


@pytest.mark.parametrize("kind", ALL_KINDS)
async def test_wrong_signer(app: Api, make_wallet: WalletFactory, kind: str) -> None:
    client, _ = app
    wallet = make_wallet(kind)
    assert_error(await login(client, wallet.address, wallet.wrong), 400, "invalid_grant")


async def test_failed_contract_login_keeps_the_nonce(app: Api, make_wallet: WalletFactory) -> None:
    client, _ = app
    wallet = make_wallet("safe")
    text = siwe_text.message(wallet.address, await nonce(client))
    bad = {"client_id": "dapp", "message": text, "signature": wallet.wrong(text)}
    assert_error(await client.post("/siwe/verify", json=bad), 400, "invalid_grant")
    good = {**bad, "signature": wallet.sign(text)}
    assert (await client.post("/siwe/verify", json=good)).status_code == 200


@pytest.mark.parametrize("kind", ALL_KINDS)
async def test_chain_not_allowed_for_client(
    app: Api, make_wallet: WalletFactory, kind: str
) -> None:
    client, _ = app
    wallet = make_wallet(kind)
    r = await login(client, wallet.address, wallet.sign, chain_id=NOT_ALLOWED)
    assert_error(r, 400, "invalid_request")


@pytest.mark.parametrize(
    ("kind", "code"),
    # 65-byte signatures that do not recover to the address are presumed EOA signatures
    # there; longer / wrapped ones need the chain: "not configured".
    [("safe", "invalid_grant"), ("long", "invalid_request"), ("6492", "invalid_request")],
)
async def test_chain_allowed_but_not_configured(
    app: Api, make_wallet: WalletFactory, kind: str, code: str
) -> None:
    client, svc = app
    wallet = make_wallet(kind)
    r = await login(client, wallet.address, wallet.sign, chain_id=UNCONFIGURED)
    assert_error(r, 400, code)
    assert UNCONFIGURED not in svc.chains.clients  # never sent to some default RPC


async def test_eoa_login_on_a_chain_without_config(app: Api, make_wallet: WalletFactory) -> None:
    client, _ = app
    wallet = make_wallet("eoa")
    r = await login(client, wallet.address, wallet.sign, chain_id=UNCONFIGURED)
    assert sub_of(r) == f"did:pkh:eip155:{UNCONFIGURED}:{wallet.address}"


@pytest.mark.parametrize("kind", CONTRACT_KINDS)
async def test_wallet_on_another_chain(app: Api, make_wallet: WalletFactory, kind: str) -> None:
    """The wallet exists (or its factory does) on 31337; the message names 1337, where it
    has no code: the signature is checked there, and fails."""
    client, svc = app
    wallet = make_wallet(kind)
    before = svc.chains.require(HARDHAT).rpc_round_trips
    r = await login(client, wallet.address, wallet.sign, chain_id=OTHER)
    assert_error(r, 400, "invalid_grant")
    assert svc.chains.require(HARDHAT).rpc_round_trips == before  # 31337 was not asked
    assert svc.chains.require(OTHER).rpc_round_trips > 0


@pytest.mark.parametrize("kind", CONTRACT_KINDS)
async def test_rpc_down_is_503(app: Api, make_wallet: WalletFactory, kind: str) -> None:
    client, _ = app
    wallet = make_wallet(kind)
    r = await login(client, wallet.address, wallet.sign, chain_id=DOWN)
    assert_error(r, 503, "temporarily_unavailable")
    assert "127.0.0.1" not in r.text  # the RPC URL is not disclosed


async def test_rpc_down_does_not_stop_eoa_logins(app: Api, make_wallet: WalletFactory) -> None:
    client, _ = app
    wallet = make_wallet("eoa")
    r = await login(client, wallet.address, wallet.sign, chain_id=DOWN)
    assert sub_of(r) == f"did:pkh:eip155:{DOWN}:{wallet.address}"
