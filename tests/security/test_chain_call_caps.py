"""Signature checks run code the signer chooses: every such eth_call is capped, and a
misbehaving wallet is a failed proof, never a stalled server or a 503.

The attacks:
- a crafted EIP-6492 signature whose "factory" is the BN254 pairing precompile (0x08):
  nothing needs deploying, it fits in a login request, and py-evm (the embedded chain of the
  default server) spends ~0.15 s per pair in py_ecc while the gas is cheap. Before the fix it
  froze `did-auth serve` for seconds per request: the EVM ran on the event loop.
- contract wallets (contracts/test/TestHostileWallet.sol) whose isValidSignature burns all
  the gas, reverts, or returns garbage; and the same contract as an EIP-6492 factory.
  Before the fix an out-of-gas eth_call on Hardhat/geth ("Transaction ran out of gas",
  -32000) was 503, and uncapped calls ran with the block gas limit.

Only an unreachable RPC is 503. A reachable RPC that does not answer a capped call within
`verify_timeout` is a failed proof (the wallet's code is too slow).
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import httpx
import pytest
from aiohttp import web
from py_ecc.optimized_bn128.optimized_curve import G1, G2, normalize
from web3 import Web3

from did_auth.adapters.chain.client import ChainClient
from did_auth.config.settings import load_settings
from did_auth.core.errors import ConfigError
from did_auth.services import Services
from tests import siwe_text
from tests.adapters.chain.wallets import (
    address_of,
    assert_error,
    counterfactual_signer,
    eoa_signer,
    hex0x,
    login,
    new_key,
    wallet_signer,
    wrap_6492,
)
from tests.fixtures.hardhat import HardhatNode, contract_at, deploy
from tests.fixtures.redis_server import free_port
from tests.fixtures.servers import (
    CLIENT,
    LiveServer,
    config_dict,
    running_app,
    settings_for,
    start_server,
    stop_server,
)

CHAIN = 31337
BURN_GAS, REVERT, DIRTY_MAGIC, SHORT_MAGIC, HUGE_RETURN = range(5)
Api = tuple[httpx.AsyncClient, Services]
BN254_PAIRING = "0x" + "00" * 19 + "08"


def pairing_pairs(count: int) -> bytes:
    """`count` (G1 generator, G2 generator) pairs: valid input of the BN254 pairing check."""
    g1, g2 = normalize(G1), normalize(G2)
    words = (int(g1[0]), int(g1[1]), *reversed(g2[0].coeffs), *reversed(g2[1].coeffs))
    return b"".join(int(w).to_bytes(32, "big") for w in words) * count


def crafted_6492(pairs: int = 80) -> str:
    """An EIP-6492 signature whose factory call is the pairing precompile: as many pairs as a
    login request can carry (16 KiB of signature)."""
    return hex0x(wrap_6492(BN254_PAIRING, pairing_pairs(pairs), bytes(65)))


def rate_limits(**over: Any) -> dict[str, Any]:
    return {**config_dict()["rate_limits"], **over}


def embedded(svc: Services) -> ChainClient:
    client = svc.chains.require(CHAIN)
    assert client.embedded is not None
    return client


@pytest.fixture(scope="module")
async def app() -> AsyncIterator[Api]:
    settings = settings_for(
        chains=[{"chain_id": CHAIN, "rpc_url": "embedded"}],
        rate_limits=rate_limits(source_backoff_pair_threshold=3),
    )
    async with running_app(settings) as pair:
        yield pair


@pytest.fixture(scope="module")
def hostile(app: Api) -> dict[int, str]:
    """One TestHostileWallet per mode on the embedded chain."""
    w3 = embedded(app[1]).embedded.sync_w3()  # type: ignore[union-attr]
    return {mode: deploy(w3, "TestHostileWallet", mode) for mode in range(5)}


# --------------------------------------------------------------- the embedded chain


async def test_crafted_6492_signature_is_stopped_and_refused(app: Api) -> None:
    client, svc = app
    started = time.monotonic()
    r = await login(client, address_of(new_key()), lambda _text: crafted_6492())
    elapsed = time.monotonic() - started
    assert_error(r, 400, "invalid_grant")
    assert "did not finish within 2 s" in r.json()["error_description"]
    # verify_timeout (2 s) stops the EVM; without the cap the 80 pairings take ~12 s or more
    assert elapsed < 2 + 2.5, elapsed
    # the chain is intact and serves the next login at once
    key = new_key()
    assert (await login(client, address_of(key), eoa_signer(key))).status_code == 200
    chain = embedded(svc).embedded
    assert chain is not None
    w3 = chain.sync_w3()
    owner, salt = new_key(), os.urandom(32)
    factory = contract_at(w3, "TestWalletFactory", chain.wallet_factory)
    wallet = factory.functions.computeAddress(address_of(owner), salt).call()
    calldata = bytes.fromhex(factory.encode_abi("deploy", args=[address_of(owner), salt])[2:])
    r = await login(client, wallet, counterfactual_signer(chain.wallet_factory, calldata, owner))
    assert r.status_code == 200, r.text


async def test_other_requests_are_answered_while_a_crafted_call_runs(app: Api) -> None:
    """The EVM runs on a worker thread: the event loop keeps serving."""
    client, _ = app
    crafted = asyncio.create_task(
        login(client, address_of(new_key()), lambda _text: crafted_6492())
    )
    await asyncio.sleep(0.3)  # the crafted call is on the EVM now
    latencies: list[float] = []
    while not crafted.done():
        t = time.monotonic()
        health = await client.get("/healthz")
        nonce = await client.post("/siwe/nonce", json={"client_id": "dapp"})
        latencies.append(time.monotonic() - t)
        assert health.status_code == 200 and nonce.status_code == 200
        await asyncio.sleep(0.05)
    assert_error(await crafted, 400, "invalid_grant")
    assert len(latencies) >= 5, latencies
    # well below the crafted call's ~2 s (before: every one of these waited for it)
    assert max(latencies) < 0.75, latencies


async def test_the_evm_is_never_used_from_two_threads(app: Api) -> None:
    """py-evm is not thread-safe: while the worker runs the crafted call, another thread's
    use of the chain (`sync_w3()`) waits for the chain's lock until the call is stopped."""
    client, svc = app
    chain = embedded(svc).embedded
    assert chain is not None
    crafted = asyncio.create_task(
        login(client, address_of(new_key()), lambda _text: crafted_6492())
    )
    await asyncio.sleep(0.3)  # the crafted call is on the EVM now
    started = time.monotonic()
    head = await asyncio.to_thread(lambda: chain.sync_w3().eth.block_number)
    waited = time.monotonic() - started
    assert_error(await crafted, 400, "invalid_grant")
    assert head >= 1
    assert waited > 1.0, waited  # the call holds the chain until its 2 s cap


async def test_gas_burning_wallet_is_refused_and_backs_off_the_source(
    app: Api, hostile: dict[int, str]
) -> None:
    client, _ = app
    burner = hostile[BURN_GAS]
    for _ in range(3):  # source_backoff_pair_threshold = 3
        started = time.monotonic()
        r = await login(client, burner, wallet_signer(new_key()))
        assert_error(r, 400, "invalid_grant")
        assert time.monotonic() - started < 2 + 2.5
    # counted as failed proofs: this IP is now backed off for this account
    r = await login(client, burner, wallet_signer(new_key()))
    assert_error(r, 429, "slow_down")
    assert int(r.headers["Retry-After"]) >= 1


@pytest.mark.parametrize("mode", [REVERT, DIRTY_MAGIC, SHORT_MAGIC, HUGE_RETURN])
async def test_reverting_or_garbage_wallet_is_invalid_grant(
    app: Api, hostile: dict[int, str], mode: int
) -> None:
    client, _ = app
    r = await login(client, hostile[mode], wallet_signer(new_key()))
    assert_error(r, 400, "invalid_grant")
    assert "EIP-1271" in r.json()["error_description"]


@pytest.mark.parametrize("mode", [BURN_GAS, REVERT, HUGE_RETURN])
async def test_hostile_6492_factory_is_invalid_grant(
    app: Api, hostile: dict[int, str], mode: int
) -> None:
    client, _ = app
    owner = new_key()
    sign = counterfactual_signer(hostile[mode], b"\x12\x34", owner)
    r = await login(client, address_of(new_key()), sign)
    assert_error(r, 400, "invalid_grant")


async def test_relayed_revocation_for_a_gas_burning_account_is_capped(
    app: Api, hostile: dict[int, str]
) -> None:
    """POST /revocations/relay asks a contract account's isValidSignature too (EIP-1271):
    the same caps, the same verdict."""
    client, _ = app
    body = {
        "kind": "revokeAll",
        "account": hostile[BURN_GAS],
        "deadline": int(time.time()) + 3600,
        "signature": "0x" + "11" * 65,
        "chain_id": CHAIN,
    }
    started = time.monotonic()
    r = await client.post("/revocations/relay", json=body)
    assert_error(r, 400, "invalid_grant")
    assert time.monotonic() - started < 2 + 2.5


async def test_gas_cap_bounds_the_call() -> None:
    """With a generous wall clock, the gas cap alone ends a burner quickly (1M gas here:
    well under a second of py-evm; the old uncapped call ran 30M gas, ~10 s)."""
    settings = settings_for(
        chains=[
            {
                "chain_id": CHAIN,
                "rpc_url": "embedded",
                "verify_gas_limit": 1_000_000,
                "verify_timeout": 60,
            }
        ]
    )
    async with running_app(settings) as (client, svc):
        w3 = embedded(svc).embedded.sync_w3()  # type: ignore[union-attr]
        burner = deploy(w3, "TestHostileWallet", BURN_GAS)
        started = time.monotonic()
        r = await login(client, burner, wallet_signer(new_key()))
        elapsed = time.monotonic() - started
        assert_error(r, 400, "invalid_grant")
        assert "did not finish" not in r.json()["error_description"]  # out of gas, not time
        assert elapsed < 5, elapsed


def test_cap_settings_are_bounded() -> None:
    def chain(**over: Any) -> dict[str, Any]:
        return {"chains": [{"chain_id": CHAIN, **over}]}

    s = load_settings(None, environ={})
    assert s.chains[0].verify_gas_limit == 5_000_000
    assert s.chains[0].verify_timeout == 2.0
    for bad in (
        {"verify_gas_limit": 0},
        {"verify_gas_limit": 999_999},
        {"verify_gas_limit": 16_777_217},
        {"verify_timeout": 0},
        {"verify_timeout": 61},
    ):
        with pytest.raises(ConfigError):
            load_settings(None, environ={}, overrides=chain(**bad))


# ----------------------------------------------------------------- `did-auth serve`


@pytest.fixture(scope="module")
def bare_server() -> Iterator[LiveServer]:
    server = start_server({})
    yield server
    stop_server(server)


def test_default_server_keeps_serving_during_a_crafted_6492_login(
    bare_server: LiveServer,
) -> None:
    """`did-auth serve` with no config at all: nothing deployed by the attacker."""
    url = bare_server.url
    port = url.rsplit(":", 1)[1]
    address = address_of(new_key())
    nonce = httpx.post(url + "/siwe/nonce", json={"client_id": "demo"}).json()["nonce"]
    text = siwe_text.message(address, nonce, domain=f"127.0.0.1:{port}", uri=f"{url}/login")
    body = {"client_id": "demo", "message": text, "signature": crafted_6492()}
    outcome: dict[str, Any] = {}

    def crafted() -> None:
        started = time.monotonic()
        outcome["response"] = httpx.post(url + "/siwe/verify", json=body, timeout=60)
        outcome["elapsed"] = time.monotonic() - started

    thread = threading.Thread(target=crafted)
    thread.start()
    time.sleep(0.3)
    latencies = []
    with httpx.Client(base_url=url, timeout=30) as http:
        while thread.is_alive():
            t = time.monotonic()
            assert http.get("/healthz").status_code == 200
            latencies.append(time.monotonic() - t)
            time.sleep(0.05)
    thread.join()
    assert_error(outcome["response"], 400, "invalid_grant")
    assert outcome["elapsed"] < 2 + 2.5, outcome["elapsed"]
    assert len(latencies) >= 5 and max(latencies) < 0.75, latencies


# ------------------------------------------------------------------ a real Hardhat node


@pytest.fixture(scope="module")
def hardhat_hostile(hardhat_w3: Web3) -> dict[int, str]:
    return {mode: deploy(hardhat_w3, "TestHostileWallet", mode) for mode in range(5)}


def hardhat_settings(url: str, **chain: Any) -> Any:
    return settings_for(
        chains=[{"chain_id": CHAIN, "rpc_url": url, **chain}],
        clients=[{**CLIENT, "chain_ids": [CHAIN]}],
    )


async def test_hardhat_hostile_wallets_are_invalid_grant_never_503(
    hardhat_node: HardhatNode, hardhat_hostile: dict[int, str]
) -> None:
    def node_idle() -> None:
        # Hardhat runs one call at a time: a burner keeps it busy until its gas is spent,
        # whatever we stopped waiting for. Let it finish before the next login (a fresh
        # connection: Hardhat drops idle keep-alive sockets while it is busy).
        idle = Web3(Web3.HTTPProvider(hardhat_node.url, request_kwargs={"timeout": 60}))
        assert idle.eth.block_number >= 0

    async with running_app(hardhat_settings(hardhat_node.url)) as (client, _):
        for mode in (BURN_GAS, REVERT, DIRTY_MAGIC, SHORT_MAGIC, HUGE_RETURN):
            started = time.monotonic()
            r = await login(client, hardhat_hostile[mode], wallet_signer(new_key()))
            elapsed = time.monotonic() - started
            assert_error(r, 400, "invalid_grant")
            # bounded by the gas cap (5M; Hardhat's own cap is 16.7M) and verify_timeout
            assert elapsed < 2 + 1.5, (mode, elapsed)
            await asyncio.to_thread(node_idle)
        for mode in (BURN_GAS, REVERT):
            sign = counterfactual_signer(hardhat_hostile[mode], b"\x12\x34", new_key())
            r = await login(client, address_of(new_key()), sign)
            assert_error(r, 400, "invalid_grant")
            await asyncio.to_thread(node_idle)


@dataclass
class Proxy:
    """A JSON-RPC proxy in front of the Hardhat node that records requests and can delay
    the ones carrying an `eth_call` (`slow_calls`) or every request (`hang`)."""

    upstream: str
    bodies: list[Any] = field(default_factory=list)
    slow_calls: float = 0.0
    hang: bool = False
    url: str = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.bodies.append(body)
        items = body if isinstance(body, list) else [body]
        if self.hang or (self.slow_calls and any(i["method"] == "eth_call" for i in items)):
            await asyncio.sleep(30 if self.hang else self.slow_calls)
        async with aiohttp.ClientSession() as session:
            async with session.post(self.upstream, json=body) as resp:
                return web.json_response(await resp.json())

    def eth_calls(self) -> list[dict[str, Any]]:
        found = []
        for body in self.bodies:
            for item in body if isinstance(body, list) else [body]:
                if item["method"] == "eth_call":
                    found.append(item["params"][0])
        return found


@pytest.fixture
async def proxy(hardhat_node: HardhatNode) -> AsyncIterator[Proxy]:
    rpc = Proxy(upstream=hardhat_node.url)
    server = web.Application()
    server.router.add_post("/", rpc.handle)
    runner = web.AppRunner(server, shutdown_timeout=0.1)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    rpc.url = f"http://127.0.0.1:{port}/"
    yield rpc
    await runner.cleanup()


async def test_every_signature_call_carries_the_gas_cap(proxy: Proxy, hardhat_w3: Web3) -> None:
    owner = new_key()
    wallet = deploy(hardhat_w3, "TestERC1271Wallet", address_of(owner), 0)
    async with running_app(hardhat_settings(proxy.url, verify_gas_limit=3_000_000)) as (
        client,
        _,
    ):
        for _ in range(2):  # cold (getCode + eth_call) and warm (eth_call)
            r = await login(client, wallet, wallet_signer(owner))
            assert r.status_code == 200, r.text
        r = await login(client, address_of(new_key()), lambda _text: crafted_6492(2))
        assert_error(r, 400, "invalid_grant")
    calls = proxy.eth_calls()
    assert len(calls) == 3
    assert all(call["gas"] == hex(3_000_000) for call in calls), calls


async def test_slow_reachable_rpc_is_a_failed_proof(proxy: Proxy, hardhat_w3: Web3) -> None:
    owner = new_key()
    wallet = deploy(hardhat_w3, "TestERC1271Wallet", address_of(owner), 0)
    proxy.slow_calls = 3.0
    settings = hardhat_settings(proxy.url, verify_timeout=0.5, rpc_timeout=2)
    async with running_app(settings) as (client, _):
        started = time.monotonic()
        r = await login(client, wallet, wallet_signer(owner))
        assert_error(r, 400, "invalid_grant")
        assert "did not finish within 0.5 s" in r.json()["error_description"]
        assert time.monotonic() - started < 2.5


async def test_unreachable_rpc_is_503_a_silent_one_a_failed_proof(proxy: Proxy) -> None:
    """An EIP-6492 check is one capped request. An RPC that cannot be reached (closed port;
    an address that drops packets: not connected within the cap) is 503. One that took the
    request and does not answer within `verify_timeout` is a failed proof: with the gas cap
    bounding an honest node's work, the time goes to the signature's code (a choice, see
    did_auth.adapters.chain.wallet_signatures)."""
    owner = new_key()
    sign = counterfactual_signer("0x" + "00" * 20, b"", owner)
    for url in (f"http://127.0.0.1:{free_port()}", "http://10.255.255.1:8545"):
        settings = hardhat_settings(url, verify_timeout=0.5, rpc_timeout=1)
        async with running_app(settings) as (client, _):
            started = time.monotonic()
            r = await login(client, address_of(owner), sign)
            assert_error(r, 503, "temporarily_unavailable")
            assert time.monotonic() - started < 0.5 + 1.5
    proxy.hang = True
    async with running_app(hardhat_settings(proxy.url, verify_timeout=0.5, rpc_timeout=1)) as (
        client,
        _,
    ):
        started = time.monotonic()
        r = await login(client, address_of(owner), sign)
        assert_error(r, 400, "invalid_grant")
        assert "did not finish within 0.5 s" in r.json()["error_description"]
        assert time.monotonic() - started < 0.5 + 1.5
