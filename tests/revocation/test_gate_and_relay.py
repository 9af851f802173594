"""In process, on the Hardhat node, with the watcher switched off: the registry checks in
login, refresh and introspection on their own (one pinned read each, fail closed on a chain
outage), the relay route's checks (no gas spent on garbage), the embedded chain (checked,
watched and relayed at start), and the verifier's Redis push."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils.crypto import keccak
from web3 import Web3

from did_auth.adapters.chain.contracts import load_artifact
from did_auth.adapters.store.redis import RedisStore
from did_auth.config.settings import Settings
from did_auth.core.clock import SystemClock
from did_auth.core.flows.issuance import issue_for_grant
from did_auth.core.flows.revocations import RevocationBook
from did_auth.core.oauth.client_auth import hash_secret
from did_auth.core.tokens.issue import Grant, new_sid
from did_auth.core.tokens.sessions import SessionStore
from did_auth.edge.api.app import create_app
from did_auth.services import Services, build_services
from did_auth.verifier import RevocationSet
from did_auth.verifier.redis_push import RedisPush
from tests import siwe_text
from tests.fixtures.hardhat import deploy
from tests.fixtures.redis_server import RedisServer, free_port
from tests.fixtures.servers import settings_for
from tests.revocation import ROOT, RS_NAME, RS_SECRET, TYPES, RevChain, address_of, pkh_did
from tests.waits import wait_until_async


@dataclass
class App:
    client: httpx.AsyncClient
    svc: Services

    async def login(self, key: str, *, issued_at: float | None = None) -> httpx.Response:
        n = (await self.client.post("/siwe/nonce", json={"client_id": "dapp"})).json()["nonce"]
        text = siwe_text.message(address_of(key), n, issued_at=issued_at)
        return await self.client.post(
            "/siwe/verify",
            json={"client_id": "dapp", "message": text, "signature": siwe_text.sign(text, key)},
        )

    async def tokens(self, key: str) -> dict[str, Any]:
        r = await self.login(key)
        assert r.status_code == 200, r.text
        out: dict[str, Any] = r.json()
        out["sid"] = jwt.decode(out["access_token"], options={"verify_signature": False})["sid"]
        return out

    async def refresh(self, tokens: dict[str, Any]) -> httpx.Response:
        return await self.client.post("/token", data={
            "grant_type": "refresh_token", "client_id": "dapp",
            "refresh_token": tokens["refresh_token"],
        })

    async def introspect(self, token: str) -> httpx.Response:
        return await self.client.post(
            "/introspect", data={"token": token}, auth=(RS_NAME, RS_SECRET)
        )

    @property
    def round_trips(self) -> int:
        assert self.svc.registry_reader is not None
        return self.svc.registry_reader.rpc_round_trips


async def open_app(settings: Settings, *, watch: bool = False) -> App:
    svc = build_services(settings)
    if not watch:
        svc.watchers = None
    await svc.start()
    app = create_app(settings, services=svc)
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=settings.issuer)
    return App(client, svc)


async def close_app(app: App) -> None:
    await app.client.aclose()
    await app.svc.close()


def hardhat_settings(chain: RevChain, **chain_over: Any) -> Settings:
    return settings_for(
        chains=[chain.chain_config(**chain_over)],
        resource_servers=[{"name": RS_NAME, "secret_hash": hash_secret(RS_SECRET)}],
    )


@pytest.fixture
async def app(rev_chain: RevChain) -> AsyncIterator[App]:
    a = await open_app(hardhat_settings(rev_chain, relayer_private_key=rev_chain.relayer_key))
    yield a
    await close_app(a)


# ------------------------------------------------------------------- checks, no watcher


async def test_refresh_and_introspection_read_the_chain(app: App, rev_chain: RevChain) -> None:
    key = rev_chain.account()
    before = app.round_trips
    first, second = await app.tokens(key), await app.tokens(key)
    assert app.round_trips - before == 2  # one pinned status read per login
    assert (await app.introspect(first["access_token"])).json()["active"] is True

    rev_chain.revoke(key, first["sid"])  # no watcher runs in this app
    before = app.round_trips
    r = await app.refresh(first)
    assert r.status_code == 403 and r.json()["error"] == "access_denied", r.text
    assert app.round_trips - before == 1
    assert (await app.introspect(first["access_token"])).json() == {"active": False}
    # the refusal stuck: the session is revoked in the store and announced on the feed
    feed = (await app.client.get("/revocations")).json()["revoked"]
    assert [(e["sid"], e["reason"]) for e in feed] == [(first["sid"], "chain_revoked")]

    before = app.round_trips
    r = await app.refresh(second)
    assert r.status_code == 200, r.text
    assert app.round_trips - before == 1
    assert (await app.introspect(r.json()["access_token"])).json()["active"] is True

    rev_chain.revoke_all(key)
    r = await app.refresh({"refresh_token": r.json()["refresh_token"]})
    assert r.status_code == 403 and "revokeAll" in r.json()["error_description"]


async def test_login_refused_for_suspended_account_and_old_signature(
    app: App, rev_chain: RevChain
) -> None:
    key = rev_chain.account()
    account = address_of(key)
    n = (await app.client.post("/siwe/nonce", json={"client_id": "dapp"})).json()["nonce"]
    old_text = siwe_text.message(account, n, issued_at=time.time() - 1)
    old = {"client_id": "dapp", "message": old_text, "signature": siwe_text.sign(old_text, key)}
    rev_chain.suspend(account)
    r = await app.login(key)
    assert r.status_code == 403 and r.json() == {
        "error": "access_denied", "error_description": "the account is suspended"}
    rev_chain.unsuspend(account)
    assert (await app.login(key)).status_code == 200
    rev_chain.revoke_all(key)
    r = await app.client.post("/siwe/verify", json=old)
    assert r.status_code == 403 and r.json()["error"] == "access_denied"
    # the refused login did not burn the nonce's check order: signature first, then chain
    bad = {**old, "signature": "0x" + "11" * 65}
    r = await app.client.post("/siwe/verify", json=bad)
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"


async def test_chains_without_a_registry_are_not_read(rev_chain: RevChain) -> None:
    settings = settings_for(chains=[{"chain_id": 31337, "rpc_url": rev_chain.url}])
    a = await open_app(settings)
    try:
        key = rev_chain.account(funded=False)
        tokens = await a.tokens(key)
        assert (await a.refresh(tokens)).status_code == 200
        assert a.round_trips == 0
    finally:
        await close_app(a)


async def test_chain_outage_fails_closed(rev_chain: RevChain) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    settings = settings_for(
        chains=[rev_chain.chain_config(rpc_url=dead, rpc_timeout=1.0)],
        resource_servers=[{"name": RS_NAME, "secret_hash": hash_secret(RS_SECRET)}],
    )
    a = await open_app(settings, watch=True)  # the watcher fails too, without crashing
    try:
        key = rev_chain.account(funded=False)
        r = await a.login(key)
        assert r.status_code == 503 and r.json()["error"] == "temporarily_unavailable", r.text
        # a session issued earlier (e.g. while the RPC was up) cannot be refreshed/introspected
        grant = Grant(sub=pkh_did(address_of(key)), client_id="dapp", audience="trading-api",
                      scopes=("account:read",), auth_time=int(time.time()), amr=("siwe",),
                      sid=new_sid())
        tokens, _ = await issue_for_grant(settings, a.svc.issuer, a.svc.sessions, grant,
                                          a.svc.revocations)
        r = await a.refresh(tokens)
        assert r.status_code == 503 and r.json()["error"] == "temporarily_unavailable", r.text
        r = await a.introspect(tokens["access_token"])
        assert r.status_code == 503, r.text
        session = await a.svc.sessions.get(grant.sid)
        assert session is not None and not session.revoked
        assert a.svc.watchers is not None
        (watcher,) = a.svc.watchers.watchers
        # the watcher meets the outage (counted, not fatal)
        await wait_until_async(lambda: watcher.errors >= 1, 10, what="a watcher error")
    finally:
        await close_app(a)


# ------------------------------------------------------------------------------- relay


def relay_body(rev_chain: RevChain, key: str, **over: Any) -> dict[str, Any]:
    deadline, sig = rev_chain.sign(key)
    body = {"kind": "revokeAll", "account": address_of(key), "deadline": deadline,
            "signature": sig, "chain_id": 31337}
    body.update(over)
    return body


async def test_relay_without_a_relayer_key(rev_chain: RevChain) -> None:
    a = await open_app(hardhat_settings(rev_chain))
    try:
        key = rev_chain.account(funded=False)
        r = await a.client.post("/revocations/relay", json=relay_body(rev_chain, key))
        assert r.status_code == 400 and r.json() == {
            "error": "invalid_request", "error_description": "no relayer configured"}
    finally:
        await close_app(a)


async def test_relay_never_spends_gas_on_garbage(app: App, rev_chain: RevChain) -> None:
    relayer = address_of(rev_chain.relayer_key)
    w3 = rev_chain.w3
    key = rev_chain.account(funded=False)
    account = address_of(key)
    nonce_before = w3.eth.get_transaction_count(relayer)  # type: ignore[arg-type]

    async def post(body: dict[str, Any]) -> httpx.Response:
        return await app.client.post("/revocations/relay", json=body)

    other = rev_chain.account(funded=False)
    _, foreign_sig = rev_chain.sign(other)
    cases = [
        (relay_body(rev_chain, key, signature="0x" + "11" * 65), 400, "invalid_grant"),
        (relay_body(rev_chain, key, signature=foreign_sig), 400, "invalid_grant"),
        (relay_body(rev_chain, key, deadline=rev_chain.now() + 7200), 400, "invalid_grant"),
        (relay_body(rev_chain, key, kind="revoke"), 400, "invalid_request"),  # no id
        (relay_body(rev_chain, key, kind="nuke"), 400, "invalid_request"),
        (relay_body(rev_chain, key, account="0x1234"), 400, "invalid_request"),
        (relay_body(rev_chain, key, chain_id=1), 400, "invalid_request"),
        (relay_body(rev_chain, key, signature="zz"), 400, "invalid_request"),
    ]
    for body, status, code in cases:
        r = await post(body)
        assert (r.status_code, r.json()["error"]) == (status, code), (body, r.text)
    # an expired deadline is refused by the simulation (chain time), before any send
    deadline, sig = rev_chain.sign(key, deadline=rev_chain.now() - 1)
    r = await post(relay_body(rev_chain, key, deadline=deadline, signature=sig))
    assert r.status_code == 400 and "expired" in r.json()["error_description"], r.text
    assert w3.eth.get_transaction_count(relayer) == nonce_before  # type: ignore[arg-type]

    good = relay_body(rev_chain, key)
    r = await post(good)
    assert r.status_code == 200, r.text
    receipt = w3.eth.wait_for_transaction_receipt(r.json()["tx_hash"], timeout=30)
    assert receipt["status"] == 1
    assert rev_chain.registry.functions.revokedBefore(account).call() > 0
    r = await post(good)  # replayed: its nonce is used
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant", r.text
    assert w3.eth.get_transaction_count(relayer) == nonce_before + 1  # type: ignore[arg-type]


async def test_relay_for_a_contract_wallet(app: App, rev_chain: RevChain) -> None:
    owner = rev_chain.account(funded=False)
    wallet = deploy(rev_chain.w3, "TestERC1271Wallet", address_of(owner), 10,
                    sender_key=rev_chain.funder_key)
    sid = os.urandom(32)
    deadline = rev_chain.now() + 3600
    nonce = rev_chain.registry.functions.nonces(wallet).call()
    signable = encode_typed_data(
        domain_data={"name": "did-auth RevocationRegistry", "version": "1", "chainId": 31337,
                     "verifyingContract": rev_chain.registry.address},
        message_types={"Revoke": TYPES["Revoke"]},
        message_data={"account": wallet, "id": sid, "nonce": nonce, "deadline": deadline},
    )
    digest = keccak(b"\x19" + signable.version + signable.header + signable.body)
    raw = bytes(Account.unsafe_sign_hash(digest, owner).signature)
    body = {"kind": "revoke", "account": wallet, "id": "0x" + sid.hex(), "deadline": deadline,
            "chain_id": 31337}
    # the owner's bare 65 bytes are not what this wallet accepts (it wants a trailer)
    r = await app.client.post("/revocations/relay", json={**body, "signature": "0x" + raw.hex()})
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant", r.text
    signature = "0x" + (raw + b"\x07" * 10).hex()
    r = await app.client.post("/revocations/relay", json={**body, "signature": signature})
    assert r.status_code == 200, r.text
    rev_chain.w3.eth.wait_for_transaction_receipt(r.json()["tx_hash"], timeout=30)
    assert rev_chain.registry.functions.isRevoked(wallet, sid).call()


# ---------------------------------------------------------------------- embedded chain


async def test_embedded_chain_is_checked_watched_and_relayed() -> None:
    settings = settings_for(chains=[{"chain_id": 31337, "rpc_url": "embedded",
                                     "watch_interval": 0.1}])
    a = await open_app(settings, watch=True)
    try:
        assert a.svc.watchers is not None
        (watcher,) = a.svc.watchers.watchers
        await wait_until_async(lambda: watcher.processed is not None, 30,
                               what="the watcher's first poll")
        base = a.svc.chains.client(31337)
        assert base is not None and base.embedded is not None
        chain = base.embedded
        key = chain.private_keys[5]
        tokens = await a.tokens(key)
        doomed = await a.tokens(key)
        w3 = chain.sync_w3()
        registry = w3.eth.contract(address=Web3.to_checksum_address(chain.revocation_registry),
                                   abi=load_artifact("RevocationRegistry").abi)
        registry.functions.revoke(bytes.fromhex(doomed["sid"][2:])).transact(
            {"from": address_of(key)})
        for _ in range(100):
            feed = (await a.client.get("/revocations")).json()["revoked"]
            if feed:
                break
            await asyncio.sleep(0.05)
        assert [(e["sid"], e["reason"]) for e in feed] == [(doomed["sid"], "chain_revoked")]
        assert (await a.refresh(tokens)).status_code == 200
        # gasless on the embedded chain: its funded first account relays by default
        user = "0x" + os.urandom(32).hex()
        deadline = int(w3.eth.get_block("latest")["timestamp"]) + 600
        signable = encode_typed_data(
            domain_data={"name": "did-auth RevocationRegistry", "version": "1",
                         "chainId": 31337, "verifyingContract": registry.address},
            message_types={"RevokeAll": TYPES["RevokeAll"]},
            message_data={"account": address_of(user), "nonce": 0, "deadline": deadline},
        )
        sig = "0x" + bytes(Account.sign_message(signable, user).signature).hex()
        r = await a.client.post("/revocations/relay", json={
            "kind": "revokeAll", "account": address_of(user), "deadline": deadline,
            "signature": sig, "chain_id": 31337})
        assert r.status_code == 200, r.text
        assert registry.functions.revokedBefore(address_of(user)).call() > 0
    finally:
        await close_app(a)


# ------------------------------------------------------------------ verifier push


async def test_redis_push_reaches_a_verifier_in_milliseconds(redis_server: RedisServer) -> None:
    url = redis_server.url[:-1] + "11"
    store = RedisStore.from_url(url)
    clock = SystemClock()
    sessions = SessionStore(store, clock, refresh_ttl=3600, max_lifetime=86400)
    book = RevocationBook(store, sessions, clock, access_ttl=300, session_lifetime=86400)
    view = RevocationSet()
    push = RedisPush(url, view, reconnect_delay=0.1)
    push.start()
    try:
        assert await asyncio.to_thread(push.wait_subscribed, 10)
        sid = new_sid()
        claims = {"sid": sid, "sub": "did:pkh:eip155:1:0x" + "ab" * 20, "jti": "j1"}
        assert not view.is_revoked(claims)
        t0 = time.perf_counter()
        await book.revoke_sid(sid, reason="test")
        while not view.is_revoked(claims):
            assert time.perf_counter() - t0 < 5
            await asyncio.sleep(0.005)
        print(f"\n[revocation push] store -> verifier: {(time.perf_counter() - t0) * 1000:.1f} ms")
        await store.publish("da:revocations", b"not json")  # ignored, not fatal
        await book.revoke_jti("j2", time.time() + 60, reason="test")
        while not view.is_revoked({"jti": "j2"}):
            assert time.perf_counter() - t0 < 5
            await asyncio.sleep(0.005)
        assert push.applied == 2 and push.received == 3
    finally:
        push.stop()
        await store.close()


def test_verifier_package_does_not_import_the_push_module() -> None:
    code = ("import sys, did_auth.verifier; "
            "assert 'did_auth.verifier.redis_push' not in sys.modules; "
            "assert 'redis' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)
