"""On the embedded chain a relayed `revokeAll()` ends every session authenticated before
it, including one authenticated a few seconds earlier: each mined block carries the
wall-clock time of its mining (before, an auto-mined block reused the timestamp of the
moment the previous block was mined, so `revokedBefore` could be older than the session's
auth_time and the session survived)."""

from __future__ import annotations

import asyncio
import os
import time

from eth_account import Account
from eth_account.messages import encode_typed_data
from web3 import Web3

from did_auth.adapters.chain.contracts import load_artifact
from did_auth.adapters.chain.embedded import start_embedded_chain
from did_auth.core.oauth.client_auth import hash_secret
from tests.fixtures.servers import settings_for
from tests.revocation import RS_NAME, RS_SECRET, TYPES, address_of
from tests.revocation.test_gate_and_relay import close_app, open_app
from tests.waits import wait_until_async


async def test_relayed_revoke_all_ends_a_session_from_seconds_before() -> None:
    settings = settings_for(
        chains=[{"chain_id": 31337, "rpc_url": "embedded", "watch_interval": 0.1}],
        resource_servers=[{"name": RS_NAME, "secret_hash": hash_secret(RS_SECRET)}],
    )
    a = await open_app(settings, watch=True)
    try:
        assert a.svc.watchers is not None
        (watcher,) = a.svc.watchers.watchers
        await wait_until_async(lambda: watcher.processed is not None, 30,
                               what="the watcher's first poll")
        base = a.svc.chains.client(31337)
        assert base is not None and base.embedded is not None
        chain = base.embedded
        w3 = chain.sync_w3()
        registry = w3.eth.contract(address=Web3.to_checksum_address(chain.revocation_registry),
                                   abi=load_artifact("RevocationRegistry").abi)
        # An idle chain: its pending block was opened when the last block was mined, a few
        # seconds before the login.
        with chain.worker.lock:
            pending = int(chain.tester.get_block_by_number("pending")["timestamp"])
        await asyncio.sleep(max(0.0, pending + 3 - time.time()))
        user = "0x" + os.urandom(32).hex()
        tokens = await a.tokens(user)
        await asyncio.sleep(3)
        deadline = int(time.time()) + 600
        signable = encode_typed_data(
            domain_data={"name": "did-auth RevocationRegistry", "version": "1",
                         "chainId": 31337, "verifyingContract": registry.address},
            message_types={"RevokeAll": TYPES["RevokeAll"]},
            message_data={"account": address_of(user), "nonce": 0, "deadline": deadline},
        )
        sig = "0x" + bytes(Account.sign_message(signable, user).signature).hex()
        sent = time.time()
        r = await a.client.post("/revocations/relay", json={
            "kind": "revokeAll", "account": address_of(user), "deadline": deadline,
            "signature": sig, "chain_id": 31337})
        assert r.status_code == 200, r.text
        revoked_before = registry.functions.revokedBefore(address_of(user)).call()
        assert revoked_before >= int(sent), (revoked_before, sent)  # the block's own time

        async def dead() -> bool:
            return (await a.refresh(tokens)).status_code == 400

        await wait_until_async(dead, 10, what="the session to end")
        r = await a.refresh(tokens)
        assert r.status_code == 400 and r.json()["error"] == "invalid_grant", r.text
        r = await a.introspect(tokens["access_token"])
        assert r.status_code == 200 and r.json() == {"active": False}, r.text
    finally:
        await close_app(a)


def test_blocks_carry_wall_clock_time_and_increase() -> None:
    chain = start_embedded_chain(31337)
    try:
        w3 = chain.sync_w3()
        parent = w3.eth.get_block("latest")["timestamp"]
        time.sleep(max(0.0, parent + 2.2 - time.time()))  # idle past the last block's time
        before = time.time()
        w3.eth.send_transaction({"from": chain.deployer, "to": chain.deployer, "value": 1})
        first = w3.eth.get_block("latest")
        assert int(before) <= first["timestamp"] <= time.time() + 1
        w3.eth.send_transaction({"from": chain.deployer, "to": chain.deployer, "value": 1})
        second = w3.eth.get_block("latest")
        assert second["timestamp"] > first["timestamp"]  # strictly later than its parent
        time.sleep(1.2)
        chain.tester.mine_blocks()
        third = w3.eth.get_block("latest")
        assert third["timestamp"] >= int(time.time()) - 1
        assert third["timestamp"] > second["timestamp"]
    finally:
        chain.close()
