"""Several replicas: two separate `did-auth serve` processes (not workers of one server) on one
Redis behave as one service: single-use nonces, refresh-token reuse detection, key rotation
and rate limits are all decided in the shared store."""

from __future__ import annotations

import asyncio
import itertools
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import jwt
import pytest

from tests import siwe_text
from tests.fixtures.redis_server import RedisServer, free_port
from tests.fixtures.servers import LiveServer, config_dict, start_server, stop_server

NONCE_BUDGET = 30
_IPS = itertools.count(1)


@pytest.fixture(scope="module")
def replicas(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, LiveServer]]:
    workdir = tmp_path_factory.mktemp("replicas")
    redis = RedisServer(free_port(), workdir)  # its own Redis: nothing else shares the budget
    redis.start()
    kek = workdir / "kek.bin"
    kek.write_bytes(bytes(range(1, 33)))
    kek.chmod(0o600)  # a group- or world-readable KEK file is refused at start-up
    cfg = config_dict(
        redis_url=redis.url, key_encryption_key_file=str(kek), refresh_grace=0,
        trusted_proxies=["127.0.0.1/32"],
    )
    cfg["rate_limits"] = {**cfg["rate_limits"], "nonce_per_ip": f"{NONCE_BUDGET}/h"}
    servers: list[LiveServer] = []
    try:
        servers.append(start_server(cfg))
        servers.append(start_server(cfg))
        yield servers[0], servers[1]
    finally:
        for s in servers:
            stop_server(s)
        redis.stop()


def _signed(a: LiveServer, client: httpx.Client) -> dict[str, str]:
    address, key = siwe_text.new_account()
    # a fresh client address per login: the shared nonce budget is tested on its own
    n = next(_IPS)
    ip = f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}"
    r = client.post(a.url + "/siwe/nonce", json={"client_id": "dapp"},
                    headers={"X-Forwarded-For": ip})
    assert r.status_code == 200, r.text
    text = siwe_text.message(address, r.json()["nonce"])
    return {"client_id": "dapp", "message": text, "signature": siwe_text.sign(text, key)}


def _login(server: LiveServer, client: httpx.Client, issuer: LiveServer | None = None) -> dict[str, str]:
    r = client.post(server.url + "/siwe/verify", json=_signed(issuer or server, client))
    assert r.status_code == 200, r.text
    return dict(r.json())


def test_nonce_issued_by_a_is_consumed_by_b_exactly_once(
    replicas: tuple[LiveServer, LiveServer],
) -> None:
    a, b = replicas
    with httpx.Client(timeout=30) as client:
        body = _signed(a, client)

    async def race() -> list[httpx.Response]:
        async with httpx.AsyncClient(limits=httpx.Limits(max_connections=40), timeout=30) as c:
            return await asyncio.gather(
                *[c.post(b.url + "/siwe/verify", json=body) for _ in range(30)]
            )

    responses = asyncio.run(race())
    assert [r.status_code for r in responses].count(200) == 1
    assert all(r.json()["error"] == "invalid_grant" for r in responses if r.status_code != 200)
    # and the issuing replica knows it is used
    again = httpx.post(a.url + "/siwe/verify", json=body)
    assert again.status_code == 400 and "already used" in again.json()["error_description"]


def test_refresh_rotated_on_a_is_reuse_detected_on_b(
    replicas: tuple[LiveServer, LiveServer],
) -> None:
    a, b = replicas
    with httpx.Client(timeout=30) as client:
        tok = _login(a, client)
        form = {"grant_type": "refresh_token", "client_id": "dapp",
                "refresh_token": tok["refresh_token"]}
        rotated = client.post(a.url + "/token", data=form)
        assert rotated.status_code == 200, rotated.text
        reuse = client.post(b.url + "/token", data=form)
        assert reuse.status_code == 400
        assert "reuse" in reuse.json()["error_description"]
        # the whole family is revoked, on both replicas
        nxt = {**form, "refresh_token": rotated.json()["refresh_token"]}
        for server in (a, b):
            r = client.post(server.url + "/token", data=nxt)
            assert r.status_code == 400 and r.json()["error"] == "invalid_grant"


def _jwks_kids(server: LiveServer, client: httpx.Client) -> set[str]:
    return {k["kid"] for k in client.get(server.url + "/.well-known/jwks.json").json()["keys"]}


def test_key_rotated_by_the_cli_is_in_b_jwks_before_it_signs(
    replicas: tuple[LiveServer, LiveServer],
) -> None:
    a, b = replicas
    with httpx.Client(timeout=30) as client:
        old_kid = jwt.get_unverified_header(_login(a, client)["access_token"])["kid"]
        out = subprocess.run(
            [sys.executable, "-m", "did_auth", "keys", "rotate", "--publish-ahead", "6",
             "--config", str(Path(a.workdir) / "did-auth.toml")],
            cwd=a.workdir, capture_output=True, text=True, timeout=60,
        )
        assert out.returncode == 0, out.stderr
        new_kid = out.stdout.split("new key ")[1].split()[0]
        # Observe, in order, B's JWKS and the kid of tokens signed by both replicas until
        # the new key signs. No clock assertions: only the order of observations counts.
        events: list[tuple[str, str]] = []
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline:
            if new_kid in _jwks_kids(b, client):
                events.append(("jwks_b", new_kid))
            for server in (a, b):
                token = _login(server, client)["access_token"]
                kid = jwt.get_unverified_header(token)["kid"]
                events.append(("signed", kid))
                if kid == new_kid:
                    # a trading API that knows only B's JWKS verifies the new key's token
                    jwks = jwt.PyJWKClient(b.url + "/.well-known/jwks.json")
                    jwt.decode(token, jwks.get_signing_key_from_jwt(token), algorithms=["ES256"],
                               audience="trading-api", issuer=server.url)
            if ("signed", new_kid) in events:
                break
            time.sleep(0.25)
    assert ("signed", new_kid) in events, "the new key never signed"
    first_signed = events.index(("signed", new_kid))
    assert ("jwks_b", new_kid) in events[:first_signed], "B served the key only after it signed"
    assert ("signed", old_kid) in events[:first_signed]  # the old key signed until the switch
    with httpx.Client(timeout=30) as client:
        assert {old_kid, new_kid} <= _jwks_kids(b, client)  # the old one until its tokens end
        assert {old_kid, new_kid} <= _jwks_kids(a, client)


def test_rate_limit_budget_is_shared_by_both_replicas(
    replicas: tuple[LiveServer, LiveServer],
) -> None:
    a, b = replicas

    async def fire() -> list[int]:
        async with httpx.AsyncClient(limits=httpx.Limits(max_connections=80), timeout=60) as c:
            rs = await asyncio.gather(*[
                c.post((a, b)[i % 2].url + "/siwe/nonce", json={"client_id": "dapp"},
                       headers={"X-Forwarded-For": "192.0.2.77"})
                for i in range(3 * NONCE_BUDGET)
            ])
            return [r.status_code for r in rs]

    codes = asyncio.run(fire())
    assert codes.count(200) == NONCE_BUDGET and codes.count(429) == 2 * NONCE_BUDGET
    # another address still has its own budget on either replica
    for server in (a, b):
        r = httpx.post(server.url + "/siwe/nonce", json={"client_id": "dapp"},
                       headers={"X-Forwarded-For": "192.0.2.78"})
        assert r.status_code == 200
