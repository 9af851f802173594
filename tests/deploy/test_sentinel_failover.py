"""Redis Sentinel failover under a load of SIWE logins (EIP-4361) against a live
`did-auth serve`: the primary is SIGKILLed mid-load, the sentinels promote the replica, and

- logins resume within 10 s, every failed request in between is a 503 (never a 500, never
  a 4xx caused by the failover);
- no nonce is accepted twice and no refresh token rotates twice: after the failover every
  login that succeeded is replayed (same message, same signature) and every rotated-out
  refresh token presented again, against the promoted replica; all are refused. A single-use
  write the old primary acknowledged but had not replicated would make a replay succeed,
  which is what the store's WAIT after each consumption prevents.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests import siwe_text
from tests.fixtures.redis_sentinel import RedisSentinel
from tests.fixtures.servers import LiveServer, config_dict, start_server, stop_server

THREADS = 4
RESUME_WITHIN = 10.0


@dataclass
class Load:
    kill_at: float | None = None
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    # (start, end) of each login that got its tokens and rotated its refresh token once
    ok: list[tuple[float, float]] = field(default_factory=list)
    failed: dict[int, int] = field(default_factory=dict)
    verified: list[dict[str, str]] = field(default_factory=list)
    rotated_out: list[str] = field(default_factory=list)
    nonces: dict[str, int] = field(default_factory=dict)

    def fail(self, status: int) -> None:
        with self.lock:
            self.failed[status] = self.failed.get(status, 0) + 1


@pytest.fixture
def sentinel_server() -> Iterator[tuple[RedisSentinel, LiveServer]]:
    topo = RedisSentinel(Path(tempfile.mkdtemp(prefix="did-auth-failover-")))
    server = None
    try:
        topo.start()
        cfg = config_dict(
            redis_url=topo.url(), key_encryption_key_file="kek.bin", refresh_grace=0,
            trusted_proxies=["127.0.0.1/32"],
        )
        server = start_server(cfg)
        yield topo, server
    finally:
        if server is not None:
            stop_server(server)
        topo.stop()
        shutil.rmtree(topo.workdir, ignore_errors=True)


def _worker(n: int, server: LiveServer, load: Load) -> None:
    h = {"X-Forwarded-For": f"198.51.100.{10 + n}"}
    with httpx.Client(timeout=15) as client:
        while not load.stop.is_set():
            start = time.monotonic()
            address, key = siwe_text.new_account()
            r = client.post(server.url + "/siwe/nonce", json={"client_id": "dapp"}, headers=h)
            if r.status_code != 200:
                load.fail(r.status_code)
                time.sleep(0.05)
                continue
            nonce = r.json()["nonce"]
            text = siwe_text.message(address, nonce)
            body = {"client_id": "dapp", "message": text, "signature": siwe_text.sign(text, key),
                    "scope": "account:read"}
            r = client.post(server.url + "/siwe/verify", json=body, headers=h)
            if r.status_code != 200:
                load.fail(r.status_code)
                time.sleep(0.05)
                continue
            with load.lock:
                load.nonces[nonce] = load.nonces.get(nonce, 0) + 1
                load.verified.append(body)
            old = r.json()["refresh_token"]
            form = {"grant_type": "refresh_token", "client_id": "dapp", "refresh_token": old}
            r = client.post(server.url + "/token", data=form, headers=h)
            if r.status_code != 200:
                load.fail(r.status_code)
                time.sleep(0.05)
                continue
            with load.lock:
                load.rotated_out.append(old)
                load.ok.append((start, time.monotonic()))


def test_logins_survive_a_primary_failover(
    sentinel_server: tuple[RedisSentinel, LiveServer],
) -> None:
    topo, server = sentinel_server
    load = Load()
    threads = [threading.Thread(target=_worker, args=(i, server, load)) for i in range(THREADS)]
    for t in threads:
        t.start()
    try:
        time.sleep(1.5)
        primary = topo.primary_port()
        load.kill_at = time.monotonic()
        topo.kill(primary)
        deadline = load.kill_at + RESUME_WITHIN + 5
        resumed: float | None = None
        while time.monotonic() < deadline:
            with load.lock:
                after = [s for s, _e in load.ok if s > load.kill_at]
            if after and resumed is None:
                resumed = min(e for s, e in load.ok if s > load.kill_at)
            if resumed is not None and time.monotonic() > resumed + 1.5:
                break
            time.sleep(0.05)
    finally:
        load.stop.set()
        for t in threads:
            t.join(30)
    assert topo.primary_port() != primary, "the sentinels did not promote the replica"
    before = [s for s, _e in load.ok if s < load.kill_at]
    failed = sum(load.failed.values())
    outage = None if resumed is None else resumed - load.kill_at
    print(f"\nfailover: outage {outage if outage is None else round(outage, 2)} s, "
          f"{failed} failed requests {load.failed}, {len(load.ok)} logins "
          f"({len(before)} before the kill)")
    assert before, "no login succeeded before the primary was killed"
    assert outage is not None and outage <= RESUME_WITHIN, f"logins did not resume: {outage}"
    assert set(load.failed) <= {503}, f"failures other than 503: {load.failed}"
    assert all(n == 1 for n in load.nonces.values())
    assert "Traceback" not in server.log.read_text(errors="replace")

    # Against the promoted replica: every used nonce and every rotated-out refresh token
    # is refused (a lost single-use write would let one through).
    h = {"X-Forwarded-For": "198.51.100.99"}
    with httpx.Client(timeout=15) as client:
        for body in load.verified:
            r = client.post(server.url + "/siwe/verify", json=body, headers=h)
            assert r.status_code == 400, (r.status_code, r.text)
        for token in load.rotated_out:
            form = {"grant_type": "refresh_token", "client_id": "dapp", "refresh_token": token}
            r = client.post(server.url + "/token", data=form, headers=h)
            assert r.status_code == 400, (r.status_code, r.text)
