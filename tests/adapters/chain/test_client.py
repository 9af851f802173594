"""The chain client fails closed: every way an RPC can misbehave is 503, never a pass.

A small aiohttp server stands in for a misbehaving RPC; in "proxy" mode it forwards to the
session's Hardhat node, so the happy path can be observed through it too.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from did_auth.adapters.chain.client import CONNECT_RETRIES, ChainRegistry, RpcError
from did_auth.adapters.chain.wallet_signatures import ChainSignatureChecker
from did_auth.config.settings import Settings
from did_auth.core.errors import InvalidGrant, InvalidRequest, TemporarilyUnavailable
from tests.adapters.chain.wallets import address_of, new_key, personal_hash, sign_hash
from tests.fixtures.hardhat import HardhatNode, deploy
from tests.fixtures.redis_server import free_port

HARDHAT = 31337
MESSAGE = b"example.com wants you to sign in with your Ethereum account"


@dataclass
class FakeRpc:
    upstream: str
    mode: str = "proxy"  # proxy | http500 | hang | garbage | no_batches
    bodies: list[Any] = field(default_factory=list)
    url: str = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.bodies.append(body)
        if self.mode == "http500":
            return web.Response(status=502, text="bad gateway")
        if self.mode == "hang":
            await asyncio.sleep(30)
        if self.mode == "garbage":
            return web.Response(text="<html>maintenance</html>", content_type="text/html")
        if self.mode == "no_batches" and isinstance(body, list):
            error = {"code": -32600, "message": "batch requests are not supported"}
            return web.json_response({"jsonrpc": "2.0", "id": None, "error": error})
        async with aiohttp.ClientSession() as session:
            async with session.post(self.upstream, json=body) as resp:
                return web.json_response(await resp.json())


@pytest.fixture
async def fake(hardhat_node: HardhatNode) -> AsyncIterator[FakeRpc]:
    rpc = FakeRpc(upstream=hardhat_node.url)
    app = web.Application()
    app.router.add_post("/", rpc.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    rpc.url = f"http://127.0.0.1:{port}/"
    yield rpc
    await runner.cleanup()


async def checker_for(url: str, chain_id: int = HARDHAT, **chain: Any) -> ChainSignatureChecker:
    config = {"chain_id": chain_id, "rpc_url": url, "rpc_timeout": 0.5, **chain}
    registry = ChainRegistry(Settings.model_validate({"chains": [config]}))
    await registry.start()
    return ChainSignatureChecker(registry)


@pytest.fixture
def wallet(hardhat_w3: Any) -> tuple[str, bytes]:
    owner = new_key()
    address = deploy(hardhat_w3, "TestERC1271Wallet", address_of(owner), 0)
    return address, sign_hash(owner, personal_hash(MESSAGE.decode()))


async def check(
    checker: ChainSignatureChecker, address: str, sig: bytes, chain_id: int = HARDHAT
) -> None:
    await checker.check(chain_id=chain_id, address=address, message=MESSAGE, signature=sig)


async def test_through_the_proxy_it_works_with_one_batch(
    fake: FakeRpc, wallet: tuple[str, bytes]
) -> None:
    checker = await checker_for(fake.url)
    try:
        await check(checker, *wallet)
        # cold: [eth_chainId, eth_blockNumber], then one batch pinned to that block
        first, second = fake.bodies
        assert [r["method"] for r in first] == ["eth_chainId", "eth_blockNumber"]
        assert [r["method"] for r in second] == ["eth_getCode", "eth_call"]
        block = hex(int(await checker.registry.require(HARDHAT).block_number()))
        assert second[0]["params"][1] == second[1]["params"][1]  # same block
        assert int(second[0]["params"][1], 16) <= int(block, 16)
        # the whole signature, untruncated, reached eth_call
        assert wallet[1].hex() in second[1]["params"][0]["data"]
    finally:
        await checker.registry.close()


@pytest.mark.parametrize("mode", ["http500", "hang", "garbage"])
async def test_misbehaving_rpc_is_503(fake: FakeRpc, wallet: tuple[str, bytes], mode: str) -> None:
    fake.mode = mode
    checker = await checker_for(fake.url)
    client = checker.registry.require(HARDHAT)
    try:
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(TemporarilyUnavailable) as info:
            await check(checker, *wallet)
        assert loop.time() - started < 5
        assert info.value.status == 503
        assert "127.0.0.1" not in info.value.description
        assert client.rpc_round_trips == 1  # only connection failures are retried
    finally:
        await checker.registry.close()


async def test_refused_connection_is_retried_then_503(wallet: tuple[str, bytes]) -> None:
    checker = await checker_for(f"http://127.0.0.1:{free_port()}")
    client = checker.registry.require(HARDHAT)
    try:
        with pytest.raises(TemporarilyUnavailable) as info:
            await check(checker, *wallet)
        assert info.value.reason == "rpc_unreachable"
        assert client.rpc_round_trips == 1 + CONNECT_RETRIES
    finally:
        await checker.registry.close()


async def test_rpc_without_batches_falls_back_to_single_requests(
    fake: FakeRpc, wallet: tuple[str, bytes]
) -> None:
    fake.mode = "no_batches"
    checker = await checker_for(fake.url)
    try:
        await check(checker, *wallet)
        await check(checker, *wallet)
        with pytest.raises(InvalidGrant):
            await check(checker, wallet[0], bytes(65))
    finally:
        await checker.registry.close()


async def test_rpc_of_another_chain_is_never_trusted(
    hardhat_node: HardhatNode, wallet: tuple[str, bytes]
) -> None:
    """Configured as chain 5 but the node is 31337: refused before any answer is used."""
    checker = await checker_for(hardhat_node.url, chain_id=5)
    try:
        with pytest.raises(TemporarilyUnavailable) as info:
            await check(checker, *wallet, chain_id=5)
        assert info.value.reason == "rpc_wrong_chain"
        with pytest.raises(TemporarilyUnavailable):  # and stays refused
            await check(checker, *wallet, chain_id=5)
    finally:
        await checker.registry.close()


async def test_unknown_chain_is_invalid_request(hardhat_node: HardhatNode) -> None:
    checker = await checker_for(hardhat_node.url)
    try:
        with pytest.raises(InvalidRequest):
            checker.registry.require(10)
        with pytest.raises(InvalidRequest):
            await check(checker, address_of(new_key()), bytes(97), chain_id=10)
    finally:
        await checker.registry.close()


async def test_json_rpc_error_on_a_plain_read_is_503(
    fake: FakeRpc, hardhat_node: HardhatNode
) -> None:
    checker = await checker_for(fake.url)
    client = checker.registry.require(HARDHAT)
    try:
        # eth_getCode with a malformed address: the node answers a JSON-RPC error
        def calls(tag: str) -> list[tuple[str, list[Any]]]:
            return [("eth_getCode", ["0x1234", tag]), ("eth_call", [{"to": "0x" + "00" * 20}, tag])]

        with pytest.raises(TemporarilyUnavailable):
            await client.read(calls)
    finally:
        await checker.registry.close()


def test_revert_classification() -> None:
    assert RpcError(3, "execution reverted").is_revert
    assert RpcError(-32603, "Error: VM Exception while processing transaction: reverted").is_revert
    assert not RpcError(-32005, "rate limited").is_revert
    hardhat = {"code": -32603, "message": "x", "data": {"message": "m", "data": "0x1234"}}
    assert RpcError.from_response(hardhat).data == "0x1234"
    assert json.dumps(RpcError.from_response("weird").code) == "-32603"
