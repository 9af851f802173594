"""The embedded chain (`rpc_url = "embedded"`): in-process py-evm with the registries.

In process: EOA, EIP-1271 (plain and long signatures) and EIP-6492 logins, and what is
deployed at start. Then a real `did-auth serve` with no config at all: an EOA login and a
counterfactual-wallet login against its own embedded chain.
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator, Iterator

import httpx
import jwt
import pytest
from eth_abi.abi import encode
from eth_utils.crypto import keccak
from web3 import Web3

from did_auth.adapters.chain.client import ChainClient
from did_auth.adapters.chain.contracts import load_artifact
from did_auth.config.settings import load_settings
from did_auth.services import Services, build_services
from tests import siwe_text
from tests.adapters.chain.wallets import (
    address_of,
    assert_error,
    counterfactual_signer,
    eoa_signer,
    login,
    new_key,
    wallet_signer,
)
from tests.fixtures.hardhat import contract_at, deploy
from tests.fixtures.servers import LiveServer, running_app, settings_for, start_server, stop_server

CHAIN = 31337
Api = tuple[httpx.AsyncClient, Services]


@pytest.fixture(scope="module")
async def app() -> AsyncIterator[Api]:
    async with running_app(settings_for(chains=[{"chain_id": CHAIN, "rpc_url": "embedded"}])) as p:
        yield p


def embedded(svc: Services) -> ChainClient:
    client = svc.chains.require(CHAIN)
    assert client.embedded is not None
    return client


def sub_of(r: httpx.Response) -> str:
    assert r.status_code == 200, r.text
    return str(jwt.decode(r.json()["access_token"], options={"verify_signature": False})["sub"])


def create2_wallet(factory: str, owner: str, trailer: int, salt: bytes) -> str:
    """TestWalletFactory's CREATE2 address, computed independently (EIP-1014)."""
    init = bytes.fromhex(load_artifact("TestERC1271Wallet").bytecode[2:]) + encode(
        ["address", "uint256"], [owner, trailer]
    )
    raw = keccak(b"\xff" + bytes.fromhex(factory[2:]) + salt + keccak(init))[12:]
    return Web3.to_checksum_address(raw)


# ---------------------------------------------------------------------------- in process


async def test_registries_are_deployed_and_resolved(app: Api) -> None:
    _, svc = app
    client = embedded(svc)
    assert client.config.did_registry is None and client.config.revocation_registry is None
    assert client.did_registry == client.embedded.did_registry  # type: ignore[union-attr]
    w3 = client.w3
    for address, name in (
        (client.did_registry, "EthereumDIDRegistry"),
        (client.revocation_registry, "RevocationRegistry"),
    ):
        assert address is not None
        code = await w3.eth.get_code(Web3.to_checksum_address(address))
        runtime = bytes.fromhex(load_artifact(name).deployed_bytecode[2:])
        # the artifact's runtime code, up to immutables (RevocationRegistry's EIP-712 domain)
        assert len(code) == len(runtime) > 1000 and bytes(code[:512]) == runtime[:512]
    registry = w3.eth.contract(
        address=Web3.to_checksum_address(client.revocation_registry or ""),
        abi=load_artifact("RevocationRegistry").abi,
    )
    operator = await registry.functions.OPERATOR_ROLE().call()
    deployer = client.embedded.deployer  # type: ignore[union-attr]
    assert await registry.functions.hasRole(operator, deployer).call()
    did = w3.eth.contract(
        address=Web3.to_checksum_address(client.did_registry or ""),
        abi=load_artifact("EthereumDIDRegistry").abi,
    )
    someone = address_of(new_key())
    assert await did.functions.identityOwner(someone).call() == someone


async def test_chain_id_is_the_configured_one(app: Api) -> None:
    _, svc = app
    client = embedded(svc)
    assert await client.w3.eth.chain_id == CHAIN
    # the CHAINID opcode too: run `CHAINID PUSH0 MSTORE PUSH1 32 PUSH0 RETURN`-style code
    code = "0x4660005260206000f3"
    (out,) = await client.read(lambda tag: [("eth_call", [{"data": code}, tag])])
    assert int(out, 16) == CHAIN


async def test_eoa_login(app: Api) -> None:
    client, svc = app
    key = new_key()
    before = embedded(svc).rpc_round_trips
    assert sub_of(await login(client, address_of(key), eoa_signer(key))).endswith(address_of(key))
    assert embedded(svc).rpc_round_trips == before


async def test_erc1271_wallet_logins(app: Api) -> None:
    client, svc = app
    w3 = embedded(svc).embedded.sync_w3()  # type: ignore[union-attr]
    owner, stranger, trailer = new_key(), new_key(), os.urandom(40)
    plain = deploy(w3, "TestERC1271Wallet", address_of(owner), 0)
    long = deploy(w3, "TestERC1271Wallet", address_of(owner), len(trailer))
    chain = embedded(svc)
    before = chain.rpc_round_trips
    assert sub_of(await login(client, plain, wallet_signer(owner))) == (
        f"did:pkh:eip155:{CHAIN}:{plain}"
    )
    assert chain.rpc_round_trips - before == 2  # cold
    before = chain.rpc_round_trips
    assert sub_of(await login(client, plain, wallet_signer(owner)))
    assert chain.rpc_round_trips - before == 1  # warm
    assert sub_of(await login(client, long, wallet_signer(owner, trailer)))
    assert_error(await login(client, plain, wallet_signer(stranger)), 400, "invalid_grant")
    assert_error(await login(client, long, wallet_signer(owner)), 400, "invalid_grant")


async def test_counterfactual_wallet_login(app: Api) -> None:
    client, svc = app
    chain = embedded(svc).embedded
    assert chain is not None
    w3 = chain.sync_w3()
    owner, stranger = new_key(), new_key()
    salt = os.urandom(32)
    factory = contract_at(w3, "TestWalletFactory", chain.wallet_factory)
    address = factory.functions.computeAddress(address_of(owner), salt).call()
    assert address == create2_wallet(chain.wallet_factory, address_of(owner), 0, salt)
    calldata = bytes.fromhex(factory.encode_abi("deploy", args=[address_of(owner), salt])[2:])
    good = counterfactual_signer(chain.wallet_factory, calldata, owner)
    bad = counterfactual_signer(chain.wallet_factory, calldata, stranger)
    assert sub_of(await login(client, address, good)) == f"did:pkh:eip155:{CHAIN}:{address}"
    assert w3.eth.get_code(address) == b""
    assert_error(await login(client, address, bad), 400, "invalid_grant")


async def test_configured_registry_addresses_win() -> None:
    mine = "0x" + "ab" * 20
    settings = settings_for(
        chains=[{"chain_id": 1337, "rpc_url": "embedded", "did_registry": mine,
                 "revocation_registry_for": [31337]}]
    )
    async with running_app(settings) as (_, svc):
        client = svc.chains.require(1337)
        assert client.did_registry == mine
        assert client.revocation_registry == client.embedded.revocation_registry  # type: ignore[union-attr]
        assert await client.w3.eth.chain_id == 1337


# ----------------------------------------------------------------- `did-auth serve`, no config


@pytest.fixture(scope="module")
def bare_server() -> Iterator[LiveServer]:
    server = start_server({})
    yield server
    stop_server(server)


def served_addresses(server: LiveServer) -> dict[str, str]:
    line = next((ln for ln in server.output().splitlines() if "embedded chain 31337:" in ln), None)
    assert line is not None, server.output()
    return dict(re.findall(r"(\w+) (0x[0-9a-fA-F]{40})", line))


async def test_serve_without_config_has_the_registries_in_process() -> None:
    """What `did-auth serve` builds from no config: the embedded chain with the registries."""
    settings = load_settings(None, environ={})
    assert [(c.chain_id, c.rpc_url) for c in settings.chains] == [(CHAIN, "embedded")]
    svc = build_services(settings)
    await svc.start()
    try:
        client = svc.chains.require(CHAIN)
        for address in (client.did_registry, client.revocation_registry):
            assert address and len(await client.w3.eth.get_code(address)) > 1000  # type: ignore[arg-type]
    finally:
        await svc.close()


def test_serve_without_config_accepts_eoa_and_counterfactual_logins(
    bare_server: LiveServer,
) -> None:
    url = bare_server.url
    port = url.rsplit(":", 1)[1]
    addresses = served_addresses(bare_server)
    assert set(addresses) == {"EthereumDIDRegistry", "RevocationRegistry", "TestWalletFactory"}

    def login_as(address: str, signer: object) -> httpx.Response:
        n = httpx.post(url + "/siwe/nonce", json={"client_id": "demo"}).json()["nonce"]
        text = siwe_text.message(
            address, n, domain=f"127.0.0.1:{port}", uri=f"{url}/login", chain_id=CHAIN
        )
        body = {"client_id": "demo", "message": text, "signature": signer(text)}  # type: ignore[operator]
        return httpx.post(url + "/siwe/verify", json=body, timeout=30)

    key = new_key()
    r = login_as(address_of(key), eoa_signer(key))
    assert sub_of(r) == f"did:pkh:eip155:{CHAIN}:{address_of(key)}"

    # A counterfactual wallet of the served chain's factory (address by CREATE2, offline).
    factory = addresses["TestWalletFactory"]
    owner, salt = new_key(), os.urandom(32)
    wallet = create2_wallet(factory, address_of(owner), 0, salt)
    selector = keccak(text="deploy(address,bytes32)")[:4]
    calldata = selector + encode(["address", "bytes32"], [address_of(owner), salt])
    r = login_as(wallet, counterfactual_signer(factory, calldata, owner))
    assert sub_of(r) == f"did:pkh:eip155:{CHAIN}:{wallet}"
    r = login_as(wallet, counterfactual_signer(factory, calldata, new_key()))
    assert_error(r, 400, "invalid_grant")
