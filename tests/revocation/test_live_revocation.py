"""On-chain revocation acceptance, end to end on the Hardhat node: a real `did-auth serve` process
(Redis store, the chain with our RevocationRegistry and ERC-1056 registry, watcher interval
0.2 s) and a real `examples/trading_api.py --follow-revocations --revocation-interval 0.2`.

For each kind of on-chain revocation the trading API must reject a still-unexpired access
token within one block plus the watcher interval (plus its own feed interval); the time
from the mined block to the first rejection is measured, printed (`pytest -s`) and written
to test-artifacts/revocation_latency.txt. Refresh, a login with an old signature and
introspection are checked too, and the feed shows the *watcher* applied the revocation
(reason `chain_*`), not a request that happened to check the chain first.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import redis as redis_sync

from did_auth.config.settings import Settings
from did_auth.core.flows.issuance import issue_for_grant
from did_auth.core.oauth.client_auth import hash_secret
from did_auth.core.tokens.issue import Grant, new_sid
from did_auth.edge.api.app import create_app
from did_auth.services import Services, build_services
from tests import siwe_text
from tests.fixtures.redis_server import RedisServer, free_port
from tests.fixtures.servers import LiveServer, config_dict, settings_for, start_server, stop_server
from tests.revocation import (
    ARTIFACTS,
    RS_NAME,
    RS_SECRET,
    RevChain,
    address_of,
    ethr_did,
    new_key,
    record_latency,
)

DB = "9"
TRADING_INTERVAL = 0.2
REJECTION_TIMEOUT = 15.0
#: One block (automine: the transaction's own) + watcher interval + feed interval, with
#: generous slack for a loaded 2-core CI box.
LATENCY_BOUND = 3.0


@dataclass
class Stack:
    chain: RevChain
    server: LiveServer
    config: dict[str, Any]
    trading_url: str
    trading: subprocess.Popen[bytes]
    audit_path: Path
    redis_url: str

    @property
    def url(self) -> str:
        return self.server.url

    def settings(self) -> Settings:
        """The live server's settings, for in-process helpers sharing its Redis and keys."""
        return settings_for(**{**self.config, "issuer": self.server.url})

    def audit(self) -> list[dict[str, Any]]:
        if not self.audit_path.exists():
            return []
        out = []
        for line in self.audit_path.read_text().splitlines():
            with contextlib.suppress(ValueError):
                out.append(json.loads(line))
        return out


def _wait_http(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("process exited:\n" + log.read_text(errors="replace"))
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url + "/healthz", timeout=0.5).status_code == 200:
                return
        time.sleep(0.1)
    raise RuntimeError("not ready:\n" + log.read_text(errors="replace"))


def _kill(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


def relaunch(server: LiveServer) -> LiveServer:
    """Start `did-auth serve` again on the same port with the same config and workdir."""
    port = server.url.rsplit(":", 1)[1]
    cmd = [sys.executable, "-m", "did_auth", "serve", "--port", port,
           "--config", str(server.workdir / "did-auth.toml"), "--workers", "1"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("DID_AUTH_")}
    proc = subprocess.Popen(
        cmd, cwd=server.workdir, stdout=server.log.open("ab"), stderr=subprocess.STDOUT,
        env=env, start_new_session=True,
    )
    _wait_http(server.url, proc, server.log)
    return LiveServer(server.url, proc, server.log, server.workdir)


@pytest.fixture(scope="module")
def stack(rev_chain: RevChain, redis_server: RedisServer) -> Iterator[Stack]:
    redis_url = redis_server.url[:-1] + DB
    redis_sync.Redis.from_url(redis_url).flushdb()
    tmp = Path(tempfile.mkdtemp(prefix="did-auth-revocation-"))
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "revocation_latency.txt").write_text("")
    config = config_dict(
        redis_url=redis_url,
        key_encryption_key_file=str(tmp / "kek.bin"),
        audit_log=str(tmp / "audit.jsonl"),
        chains=[rev_chain.chain_config(relayer_private_key=rev_chain.relayer_key)],
        resource_servers=[{"name": RS_NAME, "secret_hash": hash_secret(RS_SECRET)}],
    )
    server = start_server(config)
    trading_port = free_port()
    trading_log = tmp / "trading.log"
    trading = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve().parents[2] / "examples" / "trading_api.py"),
         "--issuer", server.url, "--audience", "trading-api", "--port", str(trading_port),
         "--follow-revocations", "--revocation-interval", str(TRADING_INTERVAL)],
        stdout=trading_log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True,
    )
    trading_url = f"http://127.0.0.1:{trading_port}"
    st = Stack(rev_chain, server, config, trading_url, trading, tmp / "audit.jsonl", redis_url)
    try:
        _wait_http(trading_url, trading, trading_log)
        yield st
    finally:
        _kill(st.trading)
        stop_server(st.server)
        print("\n" + (ARTIFACTS / "revocation_latency.txt").read_text(), flush=True)


# ------------------------------------------------------------------------------ helpers


def login_body(url: str, key: str, *, issued_at: float | None = None) -> dict[str, str]:
    n = httpx.post(url + "/siwe/nonce", json={"client_id": "dapp"}).json()["nonce"]
    text = siwe_text.message(address_of(key), n, issued_at=issued_at)
    return {"client_id": "dapp", "message": text, "signature": siwe_text.sign(text, key)}


def login(url: str, key: str) -> dict[str, Any]:
    r = httpx.post(url + "/siwe/verify", json=login_body(url, key))
    assert r.status_code == 200, r.text
    tokens: dict[str, Any] = r.json()
    tokens["sid"] = jwt.decode(tokens["access_token"], options={"verify_signature": False})["sid"]
    return tokens


def refresh(url: str, tokens: dict[str, Any]) -> httpx.Response:
    return httpx.post(url + "/token", data={
        "grant_type": "refresh_token", "client_id": "dapp",
        "refresh_token": tokens["refresh_token"],
    })


def introspect(url: str, token: str) -> dict[str, Any]:
    r = httpx.post(url + "/introspect", data={"token": token}, auth=(RS_NAME, RS_SECRET))
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def trading(stack: Stack, token: str) -> int:
    r = httpx.get(stack.trading_url + "/account", headers={"Authorization": f"Bearer {token}"})
    return r.status_code


def wait_rejected(stack: Stack, token: str, since: float) -> float:
    """Poll the trading API every 10 ms until it rejects `token`; seconds since `since`."""
    with httpx.Client(timeout=5) as client:
        deadline = since + REJECTION_TIMEOUT
        while time.perf_counter() < deadline:
            r = client.get(stack.trading_url + "/account",
                           headers={"Authorization": f"Bearer {token}"})
            if r.status_code == 401:
                elapsed = time.perf_counter() - since
                assert "invalid_token" in r.headers.get("www-authenticate", ""), r.headers
                return elapsed
            assert r.status_code == 200, r.text
            time.sleep(0.01)
    raise AssertionError(f"the trading API still accepts the token after {REJECTION_TIMEOUT}s")


def feed_reasons(stack: Stack) -> dict[str, str]:
    body = httpx.get(stack.url + "/revocations", params={"limit": 1000}).json()
    return {e["sid"]: e.get("reason", "") for e in body["revoked"] if "sid" in e}


def applied_lines(stack: Stack, sid: str) -> list[dict[str, Any]]:
    return [
        r for r in stack.audit()
        if r["event"] == "revocation_applied" and r.get("sid") == sid and r["outcome"] == "success"
    ]


def assert_refused(r: httpx.Response) -> None:
    assert r.status_code in (400, 403), r.text
    assert r.json()["error"] in ("invalid_grant", "access_denied"), r.text


# -------------------------------------------------------------------------------- tests


def test_revoke_all_end_to_end(stack: Stack) -> None:
    key = stack.chain.account()
    tokens = login(stack.url, key)
    assert trading(stack, tokens["access_token"]) == 200
    assert introspect(stack.url, tokens["access_token"])["active"] is True
    old = login_body(stack.url, key, issued_at=time.time() - 1)  # signed, not yet submitted

    mined = stack.chain.revoke_all(key)
    latency = wait_rejected(stack, tokens["access_token"], mined.at)
    record_latency("revokeAll()", latency)
    assert latency < LATENCY_BOUND

    assert feed_reasons(stack)[tokens["sid"]] == "chain_revoke_all"  # the watcher did it
    assert len(applied_lines(stack, tokens["sid"])) == 1
    assert_refused(refresh(stack.url, tokens))
    r = httpx.post(stack.url + "/siwe/verify", json=old)
    assert r.status_code == 403 and r.json()["error"] == "access_denied", r.text
    assert "revokeAll" in r.json()["error_description"]
    assert introspect(stack.url, tokens["access_token"]) == {"active": False}


def test_revoke_sid_kills_only_that_session(stack: Stack) -> None:
    key = stack.chain.account()
    doomed, kept = login(stack.url, key), login(stack.url, key)
    assert trading(stack, doomed["access_token"]) == 200

    mined = stack.chain.revoke(key, doomed["sid"])
    latency = wait_rejected(stack, doomed["access_token"], mined.at)
    record_latency("revoke(sid)", latency)
    assert latency < LATENCY_BOUND

    assert feed_reasons(stack)[doomed["sid"]] == "chain_revoked"
    time.sleep(2 * TRADING_INTERVAL)
    assert trading(stack, kept["access_token"]) == 200
    assert_refused(refresh(stack.url, doomed))
    assert introspect(stack.url, doomed["access_token"]) == {"active": False}
    assert introspect(stack.url, kept["access_token"])["active"] is True
    r = refresh(stack.url, kept)
    assert r.status_code == 200, r.text
    assert trading(stack, r.json()["access_token"]) == 200


def test_suspended_account(stack: Stack) -> None:
    key = stack.chain.account(funded=False)  # the operator pays, not the account
    account = address_of(key)
    tokens = login(stack.url, key)

    mined = stack.chain.suspend(account)
    latency = wait_rejected(stack, tokens["access_token"], mined.at)
    record_latency("suspend(account) by the operator", latency)
    assert latency < LATENCY_BOUND

    assert feed_reasons(stack)[tokens["sid"]] == "chain_suspended"
    r = httpx.post(stack.url + "/siwe/verify", json=login_body(stack.url, key))  # fresh signature
    assert r.status_code == 403 and r.json()["error"] == "access_denied", r.text
    assert "suspended" in r.json()["error_description"]
    assert_refused(refresh(stack.url, tokens))
    assert introspect(stack.url, tokens["access_token"]) == {"active": False}

    stack.chain.unsuspend(account)
    again = login(stack.url, key)  # the freeze is lifted; revoked sessions stay revoked
    assert trading(stack, again["access_token"]) == 200
    assert trading(stack, tokens["access_token"]) == 401


def test_gasless_relayed_revocation(stack: Stack) -> None:
    key = stack.chain.account(funded=False)  # no ETH at all: the relayer pays
    doomed, kept = login(stack.url, key), login(stack.url, key)
    deadline, signature = stack.chain.sign(key, id_=bytes.fromhex(doomed["sid"][2:]))
    body = {"kind": "revoke", "account": address_of(key), "id": doomed["sid"],
            "deadline": deadline, "signature": signature, "chain_id": 31337}

    async def relay() -> tuple[httpx.Response, float]:
        # The relay route is served in process, on the live server's Redis, keys and chain.
        settings = stack.settings()
        svc: Services = build_services(settings)
        svc.watchers = None  # the live server's watcher does the applying
        await svc.start()
        app = create_app(settings, services=svc)
        try:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url=settings.issuer) as c:
                r = await c.post("/revocations/relay", json=body)
                return r, time.perf_counter()  # the node mined it inside the relay's send
        finally:
            await svc.close()

    r, sent = asyncio.run(relay())
    assert r.status_code == 200, r.text
    receipt = stack.chain.w3.eth.wait_for_transaction_receipt(r.json()["tx_hash"], timeout=30)
    assert receipt["status"] == 1
    latency = wait_rejected(stack, doomed["access_token"], sent)
    record_latency("revokeSigned (gasless, relayed)", latency)
    assert latency < LATENCY_BOUND
    assert feed_reasons(stack)[doomed["sid"]] == "chain_revoked"
    assert trading(stack, kept["access_token"]) == 200
    assert stack.chain.registry.functions.isRevoked(address_of(key), bytes.fromhex(
        doomed["sid"][2:])).call()
    assert stack.chain.w3.eth.get_balance(address_of(key)) == 0  # type: ignore[arg-type]
    secret = stack.chain.relayer_key.lower().removeprefix("0x")
    for text in (stack.server.output(), stack.audit_path.read_text()):
        assert secret not in text.lower()


def test_erc1056_revoke_delegate_kills_the_bot_sessions(stack: Stack) -> None:
    identity_key = stack.chain.account()
    identity = address_of(identity_key)
    bot = address_of(new_key())
    stack.chain.add_delegate(identity_key, identity, bot, 3600)

    async def did_sessions() -> tuple[dict[str, Any], dict[str, Any]]:
        # What DidLogin issues: sub = the did:ethr, auth_key = the signing key's CAIP-10
        # account, indexed by RevocationBook. Minted here with the server's keys and store.
        settings = stack.settings()
        svc = build_services(settings)
        svc.watchers = None
        await svc.start()
        try:
            out = []
            for auth_key in (bot, identity):
                grant = Grant(
                    sub=ethr_did(identity), client_id="dapp", audience="trading-api",
                    scopes=("account:read",), auth_time=int(time.time()), amr=("did",),
                    sid=new_sid(), extra={"auth_key": f"eip155:31337:{auth_key.lower()}"},
                )
                tokens, _ = await issue_for_grant(
                    settings, svc.issuer, svc.sessions, grant, svc.revocations
                )
                out.append({**tokens, "sid": grant.sid})
            return out[0], out[1]
        finally:
            await svc.close()

    by_bot, by_owner = asyncio.run(did_sessions())
    assert trading(stack, by_bot["access_token"]) == 200

    mined = stack.chain.revoke_delegate(identity_key, identity, bot)
    latency = wait_rejected(stack, by_bot["access_token"], mined.at)
    record_latency("ERC-1056 revokeDelegate (bot key)", latency)
    assert latency < LATENCY_BOUND
    assert feed_reasons(stack)[by_bot["sid"]] == "did_delegate_revoked"
    assert_refused(refresh(stack.url, by_bot))
    assert introspect(stack.url, by_bot["access_token"]) == {"active": False}
    time.sleep(2 * TRADING_INTERVAL)
    assert trading(stack, by_owner["access_token"]) == 200
    assert introspect(stack.url, by_owner["access_token"])["active"] is True


def test_killed_watcher_loses_no_revocation(stack: Stack) -> None:
    key_a, key_b = stack.chain.account(), stack.chain.account()
    a_tokens, b_tokens = login(stack.url, key_a), login(stack.url, key_b)
    b_other = login(stack.url, key_b)
    _kill(stack.server.proc, signal.SIGKILL)  # no clean shutdown: the lease just expires

    stack.chain.revoke_all(key_a)  # mined while no watcher runs
    stack.chain.revoke(key_b, b_tokens["sid"])
    stack.chain.mine(3)

    stack.server = relaunch(stack.server)
    restarted = time.perf_counter()
    took = max(wait_rejected(stack, t["access_token"], restarted) for t in (a_tokens, b_tokens))
    record_latency("events mined while the server was down", took,
                   "server ready again -> both tokens rejected at the trading API")
    reasons = feed_reasons(stack)
    assert reasons[a_tokens["sid"]] == "chain_revoke_all"
    assert reasons[b_tokens["sid"]] == "chain_revoked"
    assert b_other["sid"] not in reasons
    assert trading(stack, b_other["access_token"]) == 200
    assert len(applied_lines(stack, a_tokens["sid"])) == 1
    assert len(applied_lines(stack, b_tokens["sid"])) == 1
