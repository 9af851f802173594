"""Two `did-auth serve` replicas signing through one SoftHSM2 token: logins and refreshes
verify with PyJWT and did_auth.verifier, whichever replica signed; rotation under load at
the example trading API has zero verification failures; and no private key material, no
sealed signing key and no key-encryption key file exists outside the token."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import jwt
import orjson
import pytest

from did_auth.core.ports.store_keys import HSM_SIGNING_KEYS, SIGNING_KEYS
from did_auth.verifier import JWKSCache, TokenVerifier
from tests import siwe_text
from tests.adapters.hsm.conftest import HSM_DB
from tests.fixtures.redis_server import RedisServer, free_port
from tests.fixtures.servers import LiveServer
from tests.integration.test_secrets_at_rest import _dump_db
from tests.waits import wait_until

ROOT = Path(__file__).resolve().parents[3]


def _login(server: LiveServer, client: httpx.Client) -> dict[str, str]:
    address, key = siwe_text.new_account()
    n = client.post(server.url + "/siwe/nonce", json={"client_id": "dapp"}).json()["nonce"]
    text = siwe_text.message(address, n)
    r = client.post(server.url + "/siwe/verify", json={
        "client_id": "dapp", "message": text, "signature": siwe_text.sign(text, key)})
    assert r.status_code == 200, r.text
    return dict(r.json())


def _keys_cli(server: LiveServer, *args: str) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "did_auth", "keys", *args,
         "--config", str(server.workdir / "did-auth.toml")],
        cwd=server.workdir, capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def _pyjwt(server: LiveServer, token: str, issuer: str) -> dict[str, object]:
    key = jwt.PyJWKClient(server.url + "/.well-known/jwks.json").get_signing_key_from_jwt(token)
    return dict(jwt.decode(token, key, algorithms=["ES256"], audience="trading-api",
                           issuer=issuer, options={"require": ["exp", "iat", "sub"]}))


def test_logins_and_refreshes_across_replicas_verify(hsm_replicas: list[LiveServer]) -> None:
    a, b = hsm_replicas
    jwks_a = httpx.get(a.url + "/.well-known/jwks.json").json()
    assert jwks_a == httpx.get(b.url + "/.well-known/jwks.json").json()  # one ring
    with httpx.Client(timeout=10) as client:
        tokens = _login(a, client)
        refreshed = client.post(b.url + "/token", data={
            "grant_type": "refresh_token", "client_id": "dapp",
            "refresh_token": tokens["refresh_token"]})
        assert refreshed.status_code == 200, refreshed.text
    kids = {k["kid"] for k in jwks_a["keys"]}
    for server, token in ((a, tokens["access_token"]), (b, refreshed.json()["access_token"])):
        assert jwt.get_unverified_header(token)["kid"] in kids
        assert _pyjwt(server, token, issuer=a.url)["aud"] == "trading-api"
    for token in (tokens["access_token"], refreshed.json()["access_token"]):
        # did_auth.verifier: low-s ES256 only, typ at+jwt, alg from the JWK.
        verifier = TokenVerifier(a.url, "trading-api", JWKSCache.for_issuer(a.url),
                                 follow_revocations=False)
        assert verifier.verify(token, scheme="Bearer").claims["iss"] == a.url
    for server in hsm_replicas:
        ready = httpx.get(server.url + "/readyz").json()
        assert ready["signing"] == "ok" and ready["status"] == "ready"


@pytest.fixture(scope="module")
def hsm_trading_api(hsm_replicas: list[LiveServer]) -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "examples" / "trading_api.py"), "--issuer",
         hsm_replicas[0].url, "--audience", "trading-api", "--port", str(port)],
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

    wait_until(listening, 30, interval=0.1, what="the trading API to listen")
    yield url
    proc.terminate()
    proc.wait(10)


def test_rotation_under_load_has_zero_failures(
    hsm_replicas: list[LiveServer], hsm_trading_api: str
) -> None:
    a, b = hsm_replicas
    old_kid = _keys_cli(a, "list").split()[0]
    failures: list[str] = []
    checked: Counter[str] = Counter()
    stop = threading.Event()

    def worker(server: LiveServer) -> None:
        with httpx.Client(timeout=10) as client:
            while not stop.is_set():
                token = _login(server, client)["access_token"]
                kid = jwt.get_unverified_header(token)["kid"]
                r = client.get(hsm_trading_api + "/account",
                               headers={"Authorization": f"Bearer {token}"})
                if r.status_code != 200:
                    failures.append(f"{server.url} {r.status_code} {r.text}")
                checked[kid] += 1

    threads = [threading.Thread(target=worker, args=(s,)) for s in (a, b, a)]
    for t in threads:
        t.start()
    try:
        wait_until(lambda: checked[old_kid] >= 3, 30, what="tokens of the old key")
        out = _keys_cli(b, "rotate", "--publish-ahead", "6")
        new_kid = out.split("new key ")[1].split()[0]
        wait_until(lambda: checked[new_kid] >= 6, 40, what="tokens of the new key")
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    assert failures == []
    listing = _keys_cli(a, "list")
    assert old_kid in listing and "retires" in listing and "pkcs11" in listing
    # The old key's tokens may still live: `keys retire` keeps it (and its token objects).
    assert "retired: none" in _keys_cli(a, "retire")
    for server in hsm_replicas:
        jwks = httpx.get(server.url + "/.well-known/jwks.json").json()
        assert {old_kid, new_kid} <= {k["kid"] for k in jwks["keys"]}


def test_no_private_key_outside_the_token(
    hsm_replicas: list[LiveServer], redis_server: RedisServer
) -> None:
    import redis

    with httpx.Client(timeout=10) as client:
        for server in hsm_replicas:
            _login(server, client)
    db = redis.Redis.from_url(redis_server.url[:-1] + str(HSM_DB))
    ring = orjson.loads(db.get(HSM_SIGNING_KEYS) or b"[]")
    assert ring and all(rec["backend"] == "pkcs11" and "sealed" not in rec for rec in ring)
    assert db.get(SIGNING_KEYS) is None  # no sealed ring for this deployment
    haystacks = {"redis": _dump_db(db)}
    for server in hsm_replicas:
        assert not (server.workdir / "kek.bin").exists()  # the KEK is the token's AES key
        for path in server.workdir.rglob("*"):
            if path.is_file():
                haystacks[str(path)] = path.read_bytes()
    for where, hay in haystacks.items():
        assert b"PRIVATE KEY" not in hay, where  # no PEM
        assert b'"d":' not in hay and b'"d" :' not in hay, where  # no private JWK member
        assert b'"sealed"' not in hay, where  # no sealed signing key record
