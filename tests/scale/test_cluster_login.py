"""The whole SIWE login flow through a real `did-auth serve` (2 workers) on a real 3-primary
Redis Cluster: nonce, verify, JWKS, refresh rotation and reuse detection, revocation feed,
rate limits exact across workers, including the cross-slot all-or-nothing refresh limit."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import jwt
import pytest

from did_auth.adapters.store.redis import RedisStore
from tests import siwe_text
from tests.fixtures.redis_cluster import RedisCluster
from tests.fixtures.servers import LiveServer, config_dict, start_server, stop_server

REFRESH_PER_IP = 4
NONCE_PER_IP = 25


@pytest.fixture(scope="module")
def cluster_server(redis_cluster: RedisCluster) -> Iterator[LiveServer]:
    redis_cluster.flush()  # other tests' key rings are sealed under other KEKs
    cfg = config_dict(
        redis_url=redis_cluster.url, key_encryption_key_file="kek.bin", refresh_grace=0,
        trusted_proxies=["127.0.0.1/32"],
    )
    cfg["rate_limits"] = {
        **cfg["rate_limits"],
        # cross-slot pair (token:client, refresh:ip), charged in that order: the second
        # bucket denies, so the first one's provisional charge must be given back
        "refresh_per_ip": f"{REFRESH_PER_IP}/h",
        "token_per_client": "1000/d",
        "nonce_per_ip": f"{NONCE_PER_IP}/h",
    }
    server = start_server(cfg, workers=2)
    yield server
    stop_server(server)


def _login(server: LiveServer, client: httpx.Client, ip: str = "198.51.100.1") -> dict[str, str]:
    address, key = siwe_text.new_account()
    h = {"X-Forwarded-For": ip}
    r = client.post(server.url + "/siwe/nonce", json={"client_id": "dapp"}, headers=h)
    assert r.status_code == 200, r.text
    text = siwe_text.message(address, r.json()["nonce"])
    body = {"client_id": "dapp", "message": text, "signature": siwe_text.sign(text, key),
            "scope": "account:read trade:write"}
    r = client.post(server.url + "/siwe/verify", json=body, headers=h)
    assert r.status_code == 200, r.text
    replay = client.post(server.url + "/siwe/verify", json=body, headers=h)
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
    return {**r.json(), "address": address}


def test_login_refresh_reuse_and_revocation_on_a_cluster(cluster_server: LiveServer) -> None:
    with httpx.Client(timeout=30) as client:
        tok = _login(cluster_server, client)
        token = tok["access_token"]
        jwks = jwt.PyJWKClient(cluster_server.url + "/.well-known/jwks.json")
        claims = jwt.decode(
            token, jwks.get_signing_key_from_jwt(token), algorithms=["ES256"],
            audience="trading-api", issuer=cluster_server.url,
        )
        assert claims["sub"] == f"did:pkh:eip155:31337:{tok['address']}"
        assert claims["scope"] == "account:read trade:write"
        h = {"X-Forwarded-For": "198.51.100.2"}
        form = {"grant_type": "refresh_token", "client_id": "dapp",
                "refresh_token": tok["refresh_token"]}
        first = client.post(cluster_server.url + "/token", data=form, headers=h)
        assert first.status_code == 200, first.text
        # refresh_grace = 0: presenting the rotated-out token is reuse, the family dies
        again = client.post(cluster_server.url + "/token", data=form, headers=h)
        assert again.status_code == 400 and "reuse" in again.json()["error_description"]
        nxt = {**form, "refresh_token": first.json()["refresh_token"]}
        assert client.post(cluster_server.url + "/token", data=nxt, headers=h).status_code == 400
        # revocation (RFC 7009) reaches the feed, a stream on one node of the cluster
        tok2 = _login(cluster_server, client)
        feed0 = client.get(cluster_server.url + "/revocations").json()
        assert client.post(cluster_server.url + "/revoke",
                           data={"token": tok2["refresh_token"], "client_id": "dapp"}).status_code == 200
        feed = client.get(cluster_server.url + "/revocations",
                          params={"since": feed0["cursor"]}).json()
        sid = jwt.decode(tok2["access_token"], options={"verify_signature": False})["sid"]
        assert sid in {e.get("sid") for e in feed["revoked"]}
        assert client.get(cluster_server.url + "/readyz").status_code == 200


def test_cross_slot_refresh_limit_is_all_or_nothing(
    cluster_server: LiveServer, redis_cluster: RedisCluster
) -> None:
    ip = "198.51.100.77"
    h = {"X-Forwarded-For": ip}
    # dapp is a public client: its token budget is per client and source address
    token_bucket = f"da:{{rl:token:client:dapp:ip:{ip}}}"
    ip_bucket = f"da:{{rl:refresh:ip:{ip}}}"

    async def tat() -> int:
        """The token:client bucket's theoretical arrival time (microseconds, Redis clock)."""
        store = RedisStore.from_url(redis_cluster.url)
        try:
            # the two buckets live in different slots: the compensation path really runs
            assert store.slot(token_bucket) != store.slot(ip_bucket)
            raw = await store.get(token_bucket)
            assert raw is not None
            return int(raw)
        finally:
            await store.close()

    def refresh(client: httpx.Client, token: str) -> httpx.Response:
        return client.post(cluster_server.url + "/token", headers=h, data={
            "grant_type": "refresh_token", "client_id": "dapp", "refresh_token": token})

    with httpx.Client(timeout=30) as client:
        r = refresh(client, _login(cluster_server, client, ip="198.51.100.3")["refresh_token"])
        assert r.status_code == 200, r.text
        token = r.json()["refresh_token"]
        before = asyncio.run(tat())
        codes = []
        for _ in range(REFRESH_PER_IP + 2):
            r = refresh(client, token)
            codes.append(r.status_code)
            if r.status_code == 200:
                token = r.json()["refresh_token"]
        after = asyncio.run(tat())
    assert codes == [200] * (REFRESH_PER_IP - 1) + [429] * 3
    # 1000/d: one unit is 86.4 s of TAT. Only the admitted refreshes are still charged;
    # the three denied ones were charged to token:client first and given back exactly.
    assert after - before == (REFRESH_PER_IP - 1) * 86_400_000


def test_nonce_limit_exact_across_workers_on_a_cluster(cluster_server: LiveServer) -> None:
    async def fire() -> list[int]:
        async with httpx.AsyncClient(limits=httpx.Limits(max_connections=60), timeout=60) as c:
            rs = await asyncio.gather(*[
                c.post(cluster_server.url + "/siwe/nonce", json={"client_id": "dapp"},
                       headers={"X-Forwarded-For": "192.0.2.50"})
                for _ in range(2 * NONCE_PER_IP)
            ])
            return [r.status_code for r in rs]

    codes = asyncio.run(fire())
    assert codes.count(200) == NONCE_PER_IP and codes.count(429) == NONCE_PER_IP
