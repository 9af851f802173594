"""Key rotation under load: the new key is in every replica's JWKS before it signs, the old
one stays until its tokens expire, and no verification fails at a real trading API."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import jwt
import pytest

from tests import siwe_text
from tests.fixtures.redis_server import free_port
from tests.fixtures.servers import LiveServer
from tests.waits import wait_until

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def trading_api(live_server: LiveServer) -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "examples" / "trading_api.py"), "--issuer", live_server.url,
         "--audience", "trading-api", "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"

    def listening() -> bool:
        assert proc.poll() is None, "the trading API exited"
        try:
            httpx.get(url + "/account", timeout=0.5)
        except httpx.HTTPError:
            return False
        return True

    # (it used to give up silently after 30 s and let the test run against nothing)
    wait_until(listening, 30, interval=0.1, what="the trading API to listen")
    yield url
    proc.terminate()
    proc.wait(10)


def _login(server: LiveServer, client: httpx.Client) -> str:
    address, key = siwe_text.new_account()
    n = client.post(server.url + "/siwe/nonce", json={"client_id": "dapp"}).json()["nonce"]
    text = siwe_text.message(address, n)
    r = client.post(server.url + "/siwe/verify",
                    json={"client_id": "dapp", "message": text, "signature": siwe_text.sign(text, key)})
    assert r.status_code == 200, r.text
    return str(r.json()["access_token"])


def _keys_cli(server: LiveServer, *args: str) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "did_auth", "keys", *args, "--config", str(server.workdir / "did-auth.toml")],
        cwd=server.workdir, capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_rotation_under_load_has_zero_failures(live_server: LiveServer, trading_api: str) -> None:
    before = _keys_cli(live_server, "list")
    old_kid = before.split()[0]
    failures: list[str] = []
    kids: set[str] = set()
    checked: Counter[str] = Counter()  # tokens checked at the trading API, per signing key
    stop = threading.Event()

    def worker() -> None:
        with httpx.Client(timeout=10) as client:
            while not stop.is_set():
                token = _login(live_server, client)
                kid = jwt.get_unverified_header(token)["kid"]
                kids.add(kid)
                r = client.get(trading_api + "/account", headers={"Authorization": f"Bearer {token}"})
                if r.status_code != 200:
                    failures.append(f"{r.status_code} {r.text}")
                checked[kid] += 1

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        # Under load with the old key, then rotate; keep the load until tokens of the new
        # key have been checked at the trading API too.
        wait_until(lambda: checked[old_kid] >= 3, 30, what="tokens of the old key")
        out = _keys_cli(live_server, "rotate", "--publish-ahead", "6")
        new_kid = out.split("new key ")[1].split()[0]
        wait_until(lambda: checked[new_kid] >= 3, 30, what="tokens of the new key")
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    assert failures == []
    assert old_kid in kids and new_kid in kids
    listing = _keys_cli(live_server, "list")
    assert old_kid in listing and "retires" in listing  # kept until its last token expires
    jwks = httpx.get(live_server.url + "/.well-known/jwks.json").json()
    assert {old_kid, new_kid} <= {k["kid"] for k in jwks["keys"]}


def test_rotate_refuses_too_short_publication(live_server: LiveServer) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "did_auth", "keys", "rotate", "--publish-ahead", "1",
         "--config", str(live_server.workdir / "did-auth.toml")],
        cwd=live_server.workdir, capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 1 and "publish-ahead" in out.stderr and "Traceback" not in out.stderr
