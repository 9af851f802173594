"""RPC round trips per signature check, counted by the chain clients.

Budget (docs: did_auth/adapters/chain/wallet_signatures.py): EOA 0; contract wallet (EIP-1271) at most
2 on a cold "has code" cache (block number, then getCode + isValidSignature pinned to it in
one batch) and 1 warm; EIP-6492 1.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import httpx
import pytest
from web3 import Web3

from did_auth.adapters.chain.client import ChainClient, ChainRegistry
from did_auth.adapters.chain.wallet_signatures import ChainSignatureChecker
from did_auth.config.settings import Settings
from did_auth.core.errors import InvalidGrant
from did_auth.services import Services
from tests.adapters.chain.wallets import (
    SafeStack,
    address_of,
    counterfactual_signer,
    deploy_safe_stack,
    eoa_signer,
    login,
    new_key,
    personal_hash,
    safe_signer,
    sign_hash,
    wallet_signer,
)
from tests.fixtures.hardhat import HardhatNode, contract_at, deploy, rpc, transact
from tests.fixtures.servers import running_app, settings_for

HARDHAT = 31337
Api = tuple[httpx.AsyncClient, Services]


@pytest.fixture(scope="module")
def safe_stack(hardhat_w3: Web3) -> SafeStack:
    return deploy_safe_stack(hardhat_w3)


@pytest.fixture(scope="module")
def factory(hardhat_w3: Web3) -> str:
    return deploy(hardhat_w3, "TestWalletFactory")


@pytest.fixture
async def app(hardhat_node: HardhatNode) -> AsyncIterator[Api]:
    settings = settings_for(chains=[{"chain_id": HARDHAT, "rpc_url": hardhat_node.url}])
    async with running_app(settings) as pair:
        yield pair


def chain(svc: Services) -> ChainClient:
    return svc.chains.require(HARDHAT)


async def counted_login(api: Api, address: str, signer: object) -> int:
    client, svc = api
    before = chain(svc).rpc_round_trips
    r = await login(client, address, signer)  # type: ignore[arg-type]
    assert r.status_code == 200, r.text
    return chain(svc).rpc_round_trips - before


async def test_eoa_login_makes_no_rpc(app: Api) -> None:
    key = new_key()
    assert await counted_login(app, address_of(key), eoa_signer(key)) == 0


async def test_safe_login_cold_2_warm_1(app: Api, safe_stack: SafeStack) -> None:
    owner = new_key()
    safe = safe_stack.create_safe([address_of(owner)], 1)
    signer = safe_signer(HARDHAT, safe, [owner])
    cold = await counted_login(app, safe, signer)
    warm = await counted_login(app, safe, signer)
    assert cold <= 2 and warm <= 1
    assert (cold, warm) == (2, 1)


async def test_erc1271_and_long_signature_logins(app: Api, hardhat_w3: Web3) -> None:
    owner = new_key()
    trailer = os.urandom(100)
    plain = deploy(hardhat_w3, "TestERC1271Wallet", address_of(owner), 0)
    long = deploy(hardhat_w3, "TestERC1271Wallet", address_of(owner), len(trailer))
    for wallet, signer in ((plain, wallet_signer(owner)), (long, wallet_signer(owner, trailer))):
        assert await counted_login(app, wallet, signer) == 2
        assert await counted_login(app, wallet, signer) == 1
        assert await counted_login(app, wallet, signer) == 1


async def test_counterfactual_login_is_one_round_trip(
    app: Api, hardhat_w3: Web3, factory: str
) -> None:
    owner = new_key()
    f = contract_at(hardhat_w3, "TestWalletFactory", factory)
    salt = os.urandom(32)
    address = f.functions.computeAddress(address_of(owner), salt).call()
    calldata = bytes.fromhex(f.encode_abi("deploy", args=[address_of(owner), salt])[2:])
    signer = counterfactual_signer(factory, calldata, owner)
    assert await counted_login(app, address, signer) == 1
    assert await counted_login(app, address, signer) == 1


# ------------------------------------------------------------------ the checker directly


class Ticker:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def _registry(url: str, **chain: object) -> ChainRegistry:
    registry = ChainRegistry(
        Settings.model_validate({"chains": [{"chain_id": HARDHAT, "rpc_url": url, **chain}]})
    )
    await registry.start()
    return registry


async def test_has_code_cache_ttl_and_no_negative_caching(
    hardhat_node: HardhatNode, hardhat_w3: Web3
) -> None:
    registry = await _registry(hardhat_node.url)
    ticker = Ticker()
    checker = ChainSignatureChecker(registry, code_ttl=60, monotonic=ticker)
    client = registry.require(HARDHAT)
    owner = new_key()
    wallet = deploy(hardhat_w3, "TestERC1271Wallet", address_of(owner), 0)
    message = b"example.com wants you to sign in"
    sig = sign_hash(owner, personal_hash(message.decode()))

    async def cost(address: str, signature: bytes) -> int:
        before = client.rpc_round_trips
        try:
            await checker.check(
                chain_id=HARDHAT, address=address, message=message, signature=signature
            )
        except InvalidGrant:
            pass
        return client.rpc_round_trips - before

    try:
        assert await cost(wallet, sig) == 2  # cold (includes the one-off eth_chainId check)
        assert await cost(wallet, sig) == 1
        ticker.now += 59
        assert await cost(wallet, sig) == 1
        ticker.now += 2  # past the TTL
        assert await cost(wallet, sig) == 2
        assert await cost(wallet, sig) == 1
        # An address without code: every attempt asks again (absence is never cached) ...
        nobody = address_of(new_key())
        assert await cost(nobody, sig) == 2
        assert await cost(nobody, sig) == 2
        # ... so a wallet deployed there a moment later is accepted at once.
        f = deploy(hardhat_w3, "TestWalletFactory")
        salt = os.urandom(32)
        factory = contract_at(hardhat_w3, "TestWalletFactory", f)
        fresh = factory.functions.computeAddress(address_of(owner), salt).call()
        assert await cost(fresh, sig) == 2
        transact(hardhat_w3, factory.functions.deploy(address_of(owner), salt))
        await checker.check(chain_id=HARDHAT, address=fresh, message=message, signature=sig)
    finally:
        await registry.close()


async def test_confirmations_pin_reads_below_the_head(
    hardhat_node: HardhatNode, hardhat_w3: Web3
) -> None:
    """With confirmations = 1 a wallet deployed in the newest block is not seen yet; every
    read is pinned to head - 1, which costs the block number round trip on warm checks too."""
    registry = await _registry(hardhat_node.url, confirmations=1)
    checker = ChainSignatureChecker(registry)
    client = registry.require(HARDHAT)
    owner = new_key()
    message = b"confirmations"
    sig = sign_hash(owner, personal_hash(message.decode()))
    try:
        wallet = deploy(hardhat_w3, "TestERC1271Wallet", address_of(owner), 0)
        with pytest.raises(InvalidGrant):
            await checker.check(chain_id=HARDHAT, address=wallet, message=message, signature=sig)
        rpc(hardhat_node.url, "evm_mine")
        before = client.rpc_round_trips
        await checker.check(chain_id=HARDHAT, address=wallet, message=message, signature=sig)
        await checker.check(chain_id=HARDHAT, address=wallet, message=message, signature=sig)
        assert client.rpc_round_trips - before == 2 + 2
    finally:
        await registry.close()
