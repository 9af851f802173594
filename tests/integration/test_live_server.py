"""A real `did-auth serve` (2 workers, one real Redis) driven over loopback HTTP."""

from __future__ import annotations

import asyncio
import re

import httpx
import jwt

from tests import siwe_text
from tests.fixtures.redis_server import RedisServer, free_port
from tests.fixtures.servers import LiveServer, config_dict, start_server, stop_server


def _login_body(server: LiveServer) -> tuple[dict[str, str], str]:
    address, key = siwe_text.new_account()
    n = httpx.post(server.url + "/siwe/nonce", json={"client_id": "dapp"}).json()["nonce"]
    text = siwe_text.message(address, n)
    return {"client_id": "dapp", "message": text, "signature": siwe_text.sign(text, key)}, address


def test_token_verifies_with_pyjwt_against_served_jwks(live_server: LiveServer) -> None:
    body, address = _login_body(live_server)
    r = httpx.post(live_server.url + "/siwe/verify", json=body)
    assert r.status_code == 200, r.text
    token = r.json()["access_token"]
    jwks_client = jwt.PyJWKClient(live_server.url + "/.well-known/jwks.json")
    key = jwks_client.get_signing_key_from_jwt(token)
    claims = jwt.decode(
        token, key, algorithms=["ES256"], audience="trading-api", issuer=live_server.url,
        options={"require": ["exp", "iat", "iss", "aud", "sub"]},
    )
    assert jwt.get_unverified_header(token)["typ"] == "at+jwt"
    assert claims["sub"].endswith(address)


def test_fifty_concurrent_submissions_yield_one_token(live_server: LiveServer) -> None:
    body, _ = _login_body(live_server)

    async def fire() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=50)
        async with httpx.AsyncClient(limits=limits, timeout=30) as client:
            return await asyncio.gather(
                *[client.post(live_server.url + "/siwe/verify", json=body) for _ in range(50)]
            )

    responses = asyncio.run(fire())
    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(200) == 1, statuses
    assert all(r.status_code == 400 and r.json()["error"] == "invalid_grant"
               for r in responses if r.status_code != 200)


def test_nonce_from_one_worker_consumed_once_across_workers(live_server: LiveServer) -> None:
    # Each request opens a new connection, so the two workers both serve some of them.
    for _ in range(5):
        body, _ = _login_body(live_server)
        results = [httpx.post(live_server.url + "/siwe/verify", json=body).status_code for _ in range(4)]
        assert results.count(200) == 1, results


def test_refresh_reuse_detected_across_workers(live_server: LiveServer) -> None:
    body, _ = _login_body(live_server)
    tok = httpx.post(live_server.url + "/siwe/verify", json=body).json()
    form = {"grant_type": "refresh_token", "client_id": "dapp", "refresh_token": tok["refresh_token"]}
    first = httpx.post(live_server.url + "/token", data=form)
    assert first.status_code == 200
    import time

    # Past the live server's 1 s exact-retry grace (live_server's refresh_grace): a window on
    # the server's own clock, so this wait is real time.
    time.sleep(1.1)
    again = httpx.post(live_server.url + "/token", data=form)
    assert again.status_code == 400 and "reuse" in again.json()["error_description"]
    victim = httpx.post(live_server.url + "/token", data={**form, "refresh_token": first.json()["refresh_token"]})
    assert victim.status_code == 400


def test_redis_down_fails_closed_then_recovers(tmp_path) -> None:  # type: ignore[no-untyped-def]
    redis = RedisServer(free_port(), tmp_path)
    redis.start()
    server = start_server(config_dict(redis_url=redis.url, key_encryption_key_file="kek.bin"))
    try:
        body, _ = _login_body(server)
        redis.stop()
        r = httpx.post(server.url + "/siwe/verify", json=body)
        assert r.status_code == 503 and r.json()["error"] == "temporarily_unavailable"
        r = httpx.post(server.url + "/siwe/nonce", json={"client_id": "dapp"})
        assert r.status_code == 503 and r.json()["error"] == "temporarily_unavailable"
        assert httpx.get(server.url + "/readyz").status_code == 503
        redis.start()  # an empty Redis: the old nonce is gone, so the replay is refused
        import time

        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if httpx.get(server.url + "/readyz").status_code == 200:
                break
            time.sleep(0.2)
        assert httpx.get(server.url + "/readyz").status_code == 200
        r = httpx.post(server.url + "/siwe/verify", json=body)
        assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
        body2, _ = _login_body(server)
        assert httpx.post(server.url + "/siwe/verify", json=body2).status_code == 200
        assert "Traceback" not in server.output()
    finally:
        stop_server(server)
        redis.stop()


def test_serve_with_no_config_runs_the_whole_flow() -> None:
    server = start_server({})
    try:
        # the start-up banner names the issuer: derived from the listen address (loopback)
        assert re.search(rf"issuer:\s+{re.escape(server.url)}\n", server.output()), server.output()
        address, key = siwe_text.new_account()
        n = httpx.post(server.url + "/siwe/nonce", json={"client_id": "demo"}).json()["nonce"]
        port = server.url.rsplit(":", 1)[1]
        text = siwe_text.message(address, n, domain=f"localhost:{port}",
                                 uri=f"http://localhost:{port}/", chain_id=31337)
        r = httpx.post(server.url + "/siwe/verify",
                       json={"client_id": "demo", "message": text, "signature": siwe_text.sign(text, key)})
        assert r.status_code == 200, r.text
        token = r.json()["access_token"]
        key_ = jwt.PyJWKClient(server.url + "/.well-known/jwks.json").get_signing_key_from_jwt(token)
        claims = jwt.decode(token, key_, algorithms=["ES256"], audience="trading-api", issuer=server.url)
        assert claims["sub"] == f"did:pkh:eip155:31337:{address}"
        out = server.output()
        assert server.url in out and "/demo" in out
    finally:
        stop_server(server)
