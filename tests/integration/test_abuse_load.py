"""Abuse under load over loopback: two did-auth processes sharing one Redis, one attacker
IP spraying bad proofs (some naming honest users' addresses) while honest clients from other
IPs log in. Bounded in count and time; stops by itself."""

from __future__ import annotations

import asyncio
import json
import random
from pathlib import Path

import httpx
import pytest

from tests import siwe_text
from tests.fixtures.redis_server import RedisServer
from tests.fixtures.servers import config_dict, start_server, stop_server

ATTACKS = 2000
BUDGET = 100  # verify_per_ip: 100/d, so nothing refills during the test
HONEST = 20
LOGINS_EACH = 3
ATTACKER_IP = "203.0.113.66"


def _config(redis_url: str, audit: str) -> dict:  # type: ignore[type-arg]
    cfg = config_dict(
        redis_url=redis_url, key_encryption_key_file="kek.bin", trusted_proxies=["127.0.0.1/32"],
        audit_log=audit,
    )
    cfg["rate_limits"] = {
        **cfg["rate_limits"],
        "verify_per_ip": f"{BUDGET}/d",
        "verify_per_subject": "30/m",
        # the source backoff is tested on its own; here the budget is the binding limit
        "source_backoff_ip_threshold": 100000,
        "source_backoff_pair_threshold": 100000,
    }
    return cfg


def _audit_lines(path: Path) -> list[dict]:  # type: ignore[type-arg]
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.mark.timeout(240)
def test_attacker_limited_exactly_honest_users_unaffected(redis_server: RedisServer, tmp_path: Path) -> None:
    redis_url = redis_server.own_db(2)
    kek = tmp_path / "kek.bin"
    kek.write_bytes(bytes(range(32)))
    kek.chmod(0o600)  # a group- or world-readable KEK file is refused at start-up
    servers = []
    for i in range(2):
        cfg = _config(redis_url, str(tmp_path / f"audit{i}.jsonl"))
        cfg["key_encryption_key_file"] = str(kek)
        servers.append(start_server(cfg))
    honest = [siwe_text.new_account() for _ in range(HONEST)]
    try:
        results = asyncio.run(_run([s.url for s in servers], honest))
    finally:
        for s in servers:
            stop_server(s)
    attack, good = results
    statuses = [s for s, _ in attack]
    assert all(s < 500 for s in statuses), sorted(set(statuses))
    admitted = [s for s in statuses if s != 429]
    assert len(admitted) == BUDGET, (len(admitted), sorted(set(statuses)))
    assert all(s == 400 for s in admitted)
    assert all(s == 200 for s in good), good
    assert len(good) == HONEST * LOGINS_EACH
    # the audit trail (both replicas) matches the responses exactly
    records = _audit_lines(tmp_path / "audit0.jsonl") + _audit_lines(tmp_path / "audit1.jsonl")
    attacker_fail = [r for r in records if r["event"] == "login_failure" and r["ip"] == ATTACKER_IP]
    attacker_limited = [r for r in records if r["event"] == "rate_limited" and r["ip"] == ATTACKER_IP]
    successes = [r for r in records if r["event"] == "login_success"]
    assert len(attacker_fail) == ATTACKS
    assert len(attacker_limited) == ATTACKS - BUDGET
    assert len(successes) == HONEST * LOGINS_EACH
    assert not [r for r in records if r["event"] == "login_failure" and r["ip"] != ATTACKER_IP]
    # no secrets in the audit trail: no signature, no message, no token
    raw = (tmp_path / "audit0.jsonl").read_text() + (tmp_path / "audit1.jsonl").read_text()
    assert "eyJ" not in raw and "rt_" not in raw and "wants you to sign in" not in raw
    for _, sig in attack[:50]:
        assert sig[2:40] not in raw


async def _run(urls: list[str], honest: list[tuple[str, bytes]]) -> tuple[list[tuple[int, str]], list[int]]:
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(limits=limits, timeout=60) as client:
        victims = [addr for addr, _ in honest]

        # Bad proofs, prepared up front: a third name honest users' addresses; all are signed
        # by keys that are not the named account's (a forged or sprayed signature).
        forger = siwe_text.new_account()[1]
        proofs = []
        for i in range(ATTACKS):
            claimed = victims[i % len(victims)] if i % 3 == 0 else siwe_text.new_account()[0]
            text = siwe_text.message(claimed, f"attack{i:08d}")
            proofs.append((text, siwe_text.sign(text, forger)))

        async def attack(i: int) -> tuple[int, str]:
            text, sig = proofs[i]
            r = await client.post(urls[i % 2] + "/siwe/verify", headers={"X-Forwarded-For": ATTACKER_IP},
                                  json={"client_id": "dapp", "message": text, "signature": sig})
            return r.status_code, sig

        async def attacker() -> list[tuple[int, str]]:
            out: list[tuple[int, str]] = []
            sem = asyncio.Semaphore(32)

            async def one(i: int) -> None:
                async with sem:
                    out.append(await attack(i))

            await asyncio.gather(*[one(i) for i in range(ATTACKS)])
            return out

        async def honest_client(k: int, address: str, key: bytes) -> list[int]:
            codes = []
            ip = f"10.1.0.{k + 1}"
            for j in range(LOGINS_EACH):
                url = urls[(k + j) % 2]
                n = (await client.post(url + "/siwe/nonce", json={"client_id": "dapp"},
                                       headers={"X-Forwarded-For": ip})).json()["nonce"]
                text = siwe_text.message(address, n)
                r = await client.post(url + "/siwe/verify", headers={"X-Forwarded-For": ip},
                                      json={"client_id": "dapp", "message": text,
                                            "signature": siwe_text.sign(text, key)})
                codes.append(r.status_code)
                await asyncio.sleep(random.uniform(0.05, 0.3))
            return codes

        attack_task = asyncio.create_task(attacker())
        good_lists = await asyncio.gather(*[honest_client(k, a, key) for k, (a, key) in enumerate(honest)])
        attack_results = await attack_task
    return attack_results, [c for lst in good_lists for c in lst]


def test_verify_limit_exact_under_200_concurrent_requests(redis_server: RedisServer, tmp_path: Path) -> None:
    cfg = _config(redis_server.own_db(3), str(tmp_path / "audit.jsonl"))
    cfg["rate_limits"]["nonce_per_ip"] = "50/h"
    cfg["key_encryption_key_file"] = str(tmp_path / "kek.bin")
    server = start_server(cfg, workers=2)
    try:
        async def fire() -> list[int]:
            async with httpx.AsyncClient(limits=httpx.Limits(max_connections=200), timeout=60) as c:
                rs = await asyncio.gather(*[
                    c.post(server.url + "/siwe/nonce", json={"client_id": "dapp"},
                           headers={"X-Forwarded-For": "192.0.2.9"}) for _ in range(200)
                ])
                return [r.status_code for r in rs]

        codes = asyncio.run(fire())
        assert codes.count(200) == 50 and codes.count(429) == 150
        r = httpx.post(server.url + "/siwe/nonce", json={"client_id": "dapp"},
                       headers={"X-Forwarded-For": "192.0.2.9"})
        assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
        assert "RateLimit-Policy" in r.headers and "RateLimit" in r.headers
        assert r.json()["error"] == "slow_down"
        # another client IP has its own budget; an untrusted peer's X-Forwarded-For is ignored
        assert httpx.post(server.url + "/siwe/nonce", json={"client_id": "dapp"},
                          headers={"X-Forwarded-For": "192.0.2.10"}).status_code == 200
    finally:
        stop_server(server)
