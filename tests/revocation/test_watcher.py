"""The chain watcher in process, on the Hardhat node and a real Redis: every event kind,
ownership rules, restart from the cursor, the one-actor lease, re-orgs (evm_snapshot /
evm_revert, then different blocks), confirmations, and RPC failures."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
import redis as redis_sync

from did_auth.adapters.chain.client import ChainRegistry
from did_auth.adapters.chain.registries import dedicated_client
from did_auth.adapters.chain.watcher import (
    REVOCATIONS_APPLIED,
    Watcher,
    cursor_key,
    lease_key,
)
from did_auth.adapters.chain.watcher_pool import WatcherPool
from did_auth.adapters.monitoring.audit import AuditLog
from did_auth.adapters.monitoring.metrics import METRICS
from did_auth.adapters.store.memory import MemoryStore
from did_auth.adapters.store.redis import RedisStore
from did_auth.config.settings import ChainConfig, Settings
from did_auth.core.clock import SystemClock
from did_auth.core.flows.revocations import RevocationBook
from did_auth.core.tokens.sessions import Session, SessionStore
from tests.fixtures.hardhat import rpc
from tests.fixtures.redis_server import RedisServer, free_port
from tests.revocation import RevChain, address_of, ethr_did, key_id, new_key, pkh_did
from tests.waits import wait_until_async

DB = "10"


@dataclass
class Env:
    chain: RevChain
    store: RedisStore
    sessions: SessionStore
    book: RevocationBook
    audit: AuditLog
    settings: Settings
    chains: ChainRegistry
    watchers: list[Watcher]

    def watcher(self, config: dict[str, Any] | None = None, **kw: Any) -> Watcher:
        cfg = ChainConfig(**(config or self.chain.chain_config()))
        w = Watcher(
            chain_id=cfg.chain_id,
            client=dedicated_client(self.chains, cfg),
            revocation_registry=cfg.revocation_registry,
            did_registry=cfg.did_registry,
            store=self.store,
            sessions=self.sessions,
            revocations=self.book,
            audit=self.audit,
            interval=cfg.watch_interval,
            confirmations=cfg.confirmations,
            **kw,
        )
        self.watchers.append(w)
        return w

    async def session(self, sub: str, *, auth_time: float | None = None, **extra: Any) -> str:
        now = time.time()
        s, _ = await self.sessions.create(
            Session(
                sid="0x" + os.urandom(32).hex(),
                sub=sub,
                client_id="dapp",
                audience="trading-api",
                scopes=("account:read",),
                auth_time=int(now - 5 if auth_time is None else auth_time),
                amr=("did",) if sub.startswith("did:ethr") else ("siwe",),
                created_at=0.0,
                expires_at=0.0,
                extra=dict(extra),
            )
        )
        await self.book.index(s)
        return s.sid

    async def revoked(self, sid: str) -> bool:
        s = await self.sessions.get(sid)
        assert s is not None
        return s.revoked

    def applied(self, outcome: str = "success") -> list[dict[str, Any]]:
        return [
            r for r in self.audit.records
            if r["event"] == "revocation_applied" and r["outcome"] == outcome
        ]


@pytest.fixture
async def env(rev_chain: RevChain, redis_server: RedisServer) -> AsyncIterator[Env]:
    url = redis_server.url[:-1] + DB
    redis_sync.Redis.from_url(url).flushdb()
    store = RedisStore.from_url(url)
    clock = SystemClock()
    sessions = SessionStore(store, clock, refresh_ttl=3600, max_lifetime=86400)
    book = RevocationBook(store, sessions, clock, access_ttl=300, session_lifetime=86400)
    settings = Settings(chains=[ChainConfig(**rev_chain.chain_config())])
    e = Env(rev_chain, store, sessions, book, AuditLog.memory(), settings,
            ChainRegistry(settings), [])
    yield e
    for w in e.watchers:
        with contextlib.suppress(Exception):
            await w.client.close()
    await store.close()


async def test_revoke_all_kills_earlier_sessions_of_this_chain_only(env: Env) -> None:
    key = env.chain.account()
    a = address_of(key)
    w = env.watcher()
    assert await w.poll_once() == 0 and w.acting and w.processed == env.chain.head()
    s_pkh = await env.session(pkh_did(a))
    s_ethr = await env.session(ethr_did(a), auth_key=f"eip155:31337:{a.lower()}")
    s_other_chain = await env.session(pkh_did(a, chain_id=1))  # same address, another chain
    s_later = await env.session(pkh_did(a), auth_time=time.time() + 3600)  # after the cut-off
    before = REVOCATIONS_APPLIED.labels(chain="31337", kind="chain_revoke_all").value

    mined = env.chain.revoke_all(key)
    assert await w.poll_once() == 2
    assert await env.revoked(s_pkh) and await env.revoked(s_ethr)
    assert not await env.revoked(s_other_chain) and not await env.revoked(s_later)
    lines = env.applied()
    assert {r["sid"] for r in lines} == {s_pkh, s_ethr}
    assert all(r["reason"] == "chain_revoke_all" and r["chain_id"] == 31337 for r in lines)
    assert lines[0]["block"] == mined.receipt["blockNumber"]
    assert lines[0]["tx_hash"] == "0x" + bytes(mined.receipt["transactionHash"]).hex()
    assert REVOCATIONS_APPLIED.labels(chain="31337", kind="chain_revoke_all").value == before + 2
    assert METRICS.watcher_lag.labels(chain="31337").value == 0
    feed = await env.book.feed(None)
    assert {e["sid"] for e in feed["revoked"]} == {s_pkh, s_ethr}
    # idempotent: processing again (a new poll, a re-org) writes nothing twice
    assert await w.poll_once() == 0 and len(env.applied()) == 2


async def test_revoke_sid_only_by_its_owner(env: Env) -> None:
    owner_key, stranger_key = env.chain.account(), env.chain.account()
    owner = address_of(owner_key)
    w = env.watcher()
    await w.poll_once()
    first, second = await env.session(pkh_did(owner)), await env.session(pkh_did(owner))

    env.chain.revoke(stranger_key, first)  # a stranger "revokes" someone else's session
    assert await w.poll_once() == 0
    assert not await env.revoked(first)
    denied = env.applied("denied")
    assert len(denied) == 1 and denied[0]["reason"] == "not_owner" and denied[0]["sid"] == first

    env.chain.revoke(owner_key, first)
    assert await w.poll_once() == 1
    assert await env.revoked(first) and not await env.revoked(second)
    assert [r["sid"] for r in env.applied()] == [first]


async def test_suspension_and_key_revocation(env: Env) -> None:
    key, identity_key = env.chain.account(), env.chain.account()
    a, identity = address_of(key), address_of(identity_key)
    bot = address_of(new_key())
    w = env.watcher()
    await w.poll_once()
    s1, s2 = await env.session(pkh_did(a)), await env.session(pkh_did(a))
    by_bot = await env.session(ethr_did(identity), auth_key=f"eip155:31337:{bot.lower()}")
    by_owner = await env.session(ethr_did(identity), auth_key=f"eip155:31337:{identity.lower()}")
    bare_bot = await env.session(ethr_did(identity), auth_key=bot.lower())  # bare-address form

    env.chain.suspend(a)
    assert await w.poll_once() == 2
    assert await env.revoked(s1) and await env.revoked(s2)
    env.chain.unsuspend(a)
    assert await w.poll_once() == 0
    assert await env.revoked(s1)  # never un-revoked

    env.chain.revoke(identity_key, key_id(bot))  # the identity revokes its bot key
    assert await w.poll_once() == 2
    assert await env.revoked(by_bot) and await env.revoked(bare_bot)
    assert not await env.revoked(by_owner)
    reasons = sorted(r["reason"] for r in env.applied())
    assert reasons == ["chain_key_revoked"] * 2 + ["chain_suspended"] * 2


async def test_erc1056_delegate_revocation_and_owner_change(env: Env) -> None:
    identity_key, other_key = env.chain.account(), env.chain.account()
    identity, other = address_of(identity_key), address_of(other_key)
    bot, new_owner = address_of(new_key()), address_of(new_key())
    w = env.watcher()
    await w.poll_once()
    env.chain.add_delegate(identity_key, identity, bot, 3600)
    assert await w.poll_once() == 0  # a delegate added (validTo in the future) revokes nothing

    caip = f"eip155:31337:{bot.lower()}"
    bot_session = await env.session(ethr_did(identity), auth_key=caip)
    owner_session = await env.session(
        ethr_did(identity), auth_key=f"eip155:31337:{identity.lower()}"
    )
    new_owner_session = await env.session(
        ethr_did(identity), auth_key=f"eip155:31337:{new_owner.lower()}"
    )
    siwe_session = await env.session(pkh_did(identity))
    # The same bot key serving another identity: that identity's owner must not be able to
    # kill it by revoking the key in *its own* DID (no griefing across identities).
    env.chain.add_delegate(other_key, other, bot, 3600)
    foreign = await env.session(ethr_did(other), auth_key=caip)
    assert await w.poll_once() == 0

    env.chain.revoke_delegate(identity_key, identity, bot)
    assert await w.poll_once() == 1
    assert await env.revoked(bot_session)
    for sid in (owner_session, new_owner_session, siwe_session, foreign):
        assert not await env.revoked(sid)

    env.chain.change_owner(identity_key, identity, new_owner)
    assert await w.poll_once() == 1
    assert await env.revoked(owner_session)  # authenticated with the previous owner key
    for sid in (new_owner_session, siwe_session, foreign):
        assert not await env.revoked(sid)
    assert [r["reason"] for r in env.applied()] == ["did_delegate_revoked", "did_owner_changed"]


async def test_restart_resumes_from_the_cursor(env: Env) -> None:
    key = env.chain.account()
    a = address_of(key)
    first = env.watcher()
    await first.poll_once()
    stopped_at = first.processed
    await first.release()
    sid = await env.session(pkh_did(a))
    env.chain.revoke_all(key)  # mined while no watcher runs
    env.chain.mine(3)
    second = env.watcher()  # a new process: same store
    cursor = await second.load_cursor()
    assert cursor is not None and cursor.number == stopped_at
    assert await second.poll_once() == 1
    assert await env.revoked(sid)
    assert second.processed == env.chain.head()


async def test_one_watcher_acts_per_chain(env: Env) -> None:
    key = env.chain.account()
    a = address_of(key)
    one, two = env.watcher(lease_ttl=1.0), env.watcher(lease_ttl=1.0)
    await one.poll_once()
    assert one.acting
    assert await two.poll_once() == 0 and not two.acting
    sid = await env.session(pkh_did(a))
    env.chain.revoke(key, sid)
    results = await asyncio.gather(one.poll_once(), two.poll_once())
    assert sum(results) == 1 and not two.acting
    assert len(env.applied()) == 1

    # `one` dies without releasing: `two` takes over once the lease expires ...
    later = await env.session(pkh_did(a))
    env.chain.revoke(key, later)

    async def lease_expired() -> bool:
        return await env.store.get(lease_key(31337)) is None

    await wait_until_async(lease_expired, 10, what="the dead watcher's lease to expire")
    assert await two.poll_once() == 1 and two.acting
    assert await env.revoked(later)
    # ... and `one`, back, finds its lease gone and stays passive.
    assert await one.poll_once() == 0 and not one.acting
    assert len(env.applied()) == 2
    assert await env.store.get(lease_key(31337)) == two.owner.encode()
    await two.release()
    assert await env.store.get(lease_key(31337)) is None


async def test_reorg_is_reprocessed(env: Env) -> None:
    key_a, key_b = env.chain.account(), env.chain.account()
    a, b = address_of(key_a), address_of(key_b)
    w = env.watcher()
    await w.poll_once()
    s_a, s_b = await env.session(pkh_did(a)), await env.session(pkh_did(b))
    snapshot = rpc(env.chain.url, "evm_snapshot", [])
    try:
        env.chain.revoke_all(key_a)
        env.chain.mine(2)
        assert await w.poll_once() == 1
        tip = w.processed
        assert tip is not None
    finally:
        assert rpc(env.chain.url, "evm_revert", [snapshot]) is True
    # The abandoned fork's revokeAll stays applied; the new fork carries b's revocation,
    # in a block at a height the watcher already processed, then more blocks.
    env.chain.revoke(key_b, s_b)
    env.chain.mine(3)
    assert env.chain.head() > tip
    assert await w.poll_once() == 1
    assert w.reorgs == 1
    assert await env.revoked(s_a) and await env.revoked(s_b)
    cursor = await w.load_cursor()
    assert cursor is not None and cursor.number == env.chain.head()
    assert cursor.hash == "0x" + bytes(env.chain.w3.eth.get_block(cursor.number)["hash"]).hex()

    # A shorter new fork (head below the cursor) is handled too.
    snapshot = rpc(env.chain.url, "evm_snapshot", [])
    env.chain.mine(4)
    await w.poll_once()
    assert rpc(env.chain.url, "evm_revert", [snapshot]) is True
    env.chain.mine(1)
    assert await w.poll_once() == 0
    assert w.reorgs == 2 and w.processed == env.chain.head()


async def test_confirmations_delay_processing(env: Env) -> None:
    key = env.chain.account()
    w = env.watcher(env.chain.chain_config(confirmations=2))
    await w.poll_once()
    sid = await env.session(pkh_did(address_of(key)))
    env.chain.revoke(key, sid)
    assert await w.poll_once() == 0 and not await env.revoked(sid)
    env.chain.mine(1)
    assert await w.poll_once() == 0
    env.chain.mine(1)
    assert await w.poll_once() == 1 and await env.revoked(sid)
    assert w.processed == env.chain.head() - 2


async def test_rpc_errors_never_crash_the_watcher(env: Env) -> None:
    dead = env.chain.chain_config(rpc_url=f"http://127.0.0.1:{free_port()}", watch_interval=0.05)
    w = env.watcher(dead)
    task = asyncio.create_task(w.run())
    await wait_until_async(lambda: w.errors >= 2 or task.done(), 10, what="two RPC errors")
    assert not task.done()
    assert w.errors >= 2 and w.processed is None
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert await env.store.get(cursor_key(31337)) is None


async def test_a_pool_dropped_without_close_stops_its_watchers(env: Env) -> None:
    settings = Settings(chains=[ChainConfig(**env.chain.chain_config(watch_interval=0.05))])
    chains = ChainRegistry(settings)
    await chains.start()
    pool = WatcherPool(chains, MemoryStore(), env.sessions, env.book)
    pool.start()
    (task,) = pool._tasks
    (watcher,) = pool.watchers
    await wait_until_async(lambda: watcher.polls >= 2 or task.done(), 10, what="two polls")
    assert watcher.polls >= 2 and watcher.acting and not task.done()
    del pool
    gc.collect()
    await asyncio.wait_for(task, timeout=2)
    assert not watcher.acting
    await chains.close()
