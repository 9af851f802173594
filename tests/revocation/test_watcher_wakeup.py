"""The chain watcher notices new blocks at once: `eth_subscribe("newHeads")` over the
Hardhat node's WebSocket endpoint (served on the HTTP port) when a chain has a `ws_url`,
the embedded EVM's callback on every block it mines, and a 250 ms poll otherwise."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

from did_auth.adapters.chain.embedded import start_embedded_chain
from did_auth.adapters.chain.heads import NewHeads, subscribe_new_heads
from did_auth.config.settings import ChainConfig
from tests.fixtures.hardhat import rpc
from tests.revocation import address_of, pkh_did, test_watcher
from tests.revocation.test_watcher import Env
from tests.waits import wait_until_async
from tests.wiring.test_check_config_messages import one

env = test_watcher.env  # the in-process watcher environment (Hardhat node, real Redis)


def test_the_default_poll_is_a_quarter_second() -> None:
    assert ChainConfig(chain_id=1, rpc_url="http://node.example").watch_interval == 0.25


def test_ws_url_is_checked(tmp_path: Path) -> None:
    base = '[[chains]]\nchain_id = 1\nrpc_url = "https://node.example"\n'
    assert one(tmp_path, base + 'ws_url = "https://node.example"\n') == (
        "chains.0.ws_url: 'https://node.example': scheme https:// is not one of ws://, wss://"
    )
    assert one(tmp_path, base + 'ws_url = "wss://"\n') == "chains.0.ws_url: 'wss://' has no host"
    embedded = '[[chains]]\nchain_id = 1\nrpc_url = "embedded"\nws_url = "ws://127.0.0.1:1"\n'
    assert "the embedded chain wakes its watcher" in one(tmp_path, embedded)


async def test_new_heads_over_the_nodes_websocket(env: Env) -> None:
    heads = NewHeads()
    heads.bind()
    ws_url = env.chain.node.url.replace("http://", "ws://")
    task = asyncio.create_task(subscribe_new_heads(ws_url, heads))
    try:
        await wait_until_async(lambda: heads.notifications >= 1, what="the subscription")
        await heads.wait(0)  # clear the notification sent on subscribing
        started = time.monotonic()
        await asyncio.to_thread(rpc, env.chain.node.url, "evm_mine", [])
        assert await heads.wait(5.0)
        assert time.monotonic() - started < 1.0
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_a_watcher_on_new_heads_applies_a_revoke_all_without_waiting_its_timer(
    env: Env,
) -> None:
    # A 30 s timer: only the newHeads notification can make it see the block in time.
    w = env.watcher(env.chain.chain_config(watch_interval=30))
    assert await w.poll_once() == 0
    ws_url = env.chain.node.url.replace("http://", "ws://")
    tasks = [asyncio.create_task(subscribe_new_heads(ws_url, w.heads)), asyncio.create_task(w.run())]
    try:
        await wait_until_async(lambda: w.heads.notifications >= 1, what="the subscription")
        key = await asyncio.to_thread(env.chain.account)
        sid = await env.session(pkh_did(address_of(key)), auth_time=time.time() - 5)
        await asyncio.to_thread(env.chain.revoke_all, key)
        mined = time.monotonic()
        await wait_until_async(lambda: env.revoked(sid), timeout=10, what="the revocation")
        assert time.monotonic() - mined < 2.0
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def test_the_embedded_chain_notifies_every_block() -> None:
    chain = start_embedded_chain(31337)
    try:
        heads = NewHeads()
        heads.bind()
        chain.on_block.append(heads.notify)
        before = heads.notifications
        w3 = chain.sync_w3()
        await asyncio.to_thread(
            w3.eth.send_transaction,
            {"from": chain.deployer, "to": chain.deployer, "value": 1, "gas": 21_000},
        )
        assert heads.notifications > before
        assert await heads.wait(1.0)
    finally:
        chain.close()


async def test_the_server_hooks_its_watcher_to_the_embedded_chain() -> None:
    from did_auth.services import build_services
    from tests.fixtures.servers import settings_for

    svc = build_services(settings_for(chains=[{"chain_id": 31337, "rpc_url": "embedded"}]))
    await svc.start()
    try:
        assert svc.watchers is not None
        (watcher,) = svc.watchers.watchers
        chain = svc.chains.clients[31337].embedded
        assert chain is not None and watcher.heads.notify in chain.on_block
        before = watcher.heads.notifications
        w3 = chain.sync_w3()
        await asyncio.to_thread(
            w3.eth.send_transaction,
            {"from": chain.deployer, "to": chain.deployer, "value": 1, "gas": 21_000},
        )
        assert watcher.heads.notifications > before
    finally:
        await svc.close()
    assert not chain.on_block  # unhooked when the watchers stop
