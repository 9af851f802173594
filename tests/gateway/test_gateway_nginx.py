"""did-auth-gate behind real nginx (deploy/nginx/gateway.conf as committed: auth_request),
in front of a trading API written in Node with no did-auth code, with tokens of a real
`did-auth serve` (its own, in-memory store). Two gate replicas share a Redis for DPoP `jti`s and
nginx spreads the checks over both.

Attacks performed: no token, a token without the route's scope, a DPoP proof replayed (to
the other replica), a DPoP-bound token sent as a bearer token, a revoked token, a withdrawal
without a second factor or with a step-up login token (no approved details), a withdrawal
token used twice, an unlisted route, X-Original-* / X-Forwarded-* headers from a
client (through nginx) and from an untrusted peer (straight to the gate), forged X-Auth-*
headers sent to the API."""

from __future__ import annotations

import json
import shutil
import ssl
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme
from cryptography.hazmat.primitives.asymmetric import ec
from did_auth_verifier import make_dpop_proof

from tests import siwe_text
from tests import withdrawals as wd
from tests.fixtures.redis_server import RedisServer, free_port
from tests.fixtures.servers import LiveServer, config_dict, start_server, stop_server
from tests.gateway.stack import (
    Proc,
    gate_config,
    render_gateway,
    start_gate,
    start_nginx,
    start_trading_api,
)
from tests.waits import wait_until

AUD = "trading-api"


@dataclass
class Stack:
    url: str  # nginx, https://localhost:PORT (also the gates' public_url)
    ctx: ssl.SSLContext
    issuer: str
    gates: list[Proc]
    api: Proc

    def client(self, **kw: Any) -> httpx.Client:
        return httpx.Client(verify=self.ctx, timeout=10, **kw)


@pytest.fixture(scope="module")
def issuer_server() -> Iterator[LiveServer]:
    """A did-auth of this module's own (one process, in-memory store): the gates only need
    its JWKS, revocation feed and logins."""
    server = start_server(config_dict(key_encryption_key_file="kek.bin"), start_timeout=180)
    yield server
    stop_server(server)


@pytest.fixture(scope="module")
def stack(issuer_server: LiveServer, redis_server: RedisServer) -> Iterator[Stack]:
    live_server = issuer_server
    work = Path(tempfile.mkdtemp(prefix="did-auth-gateway-"))
    procs: list[Proc] = []
    try:
        https, http = free_port(), free_port()
        public_url = f"https://localhost:{https}"
        gates = []
        for i in range(2):
            cfg = gate_config(live_server.url, public_url, redis_url=redis_server.url)
            gates.append(start_gate(work, cfg, f"gate{i}"))
        procs += gates
        api = start_trading_api(work)
        procs.append(api)
        ca = trustme.CA()
        leaf = ca.issue_cert("localhost", "127.0.0.1")
        cert, key = work / "cert.pem", work / "key.pem"
        leaf.private_key_and_cert_chain_pem.write_to_path(str(cert))
        leaf.private_key_pem.write_to_path(str(key))
        ctx = ssl.create_default_context()
        ca.configure_trust(ctx)
        site = render_gateway([g.url for g in gates], api.url, https, http, cert, key)
        procs.append(start_nginx(work / "nginx", site, public_url + "/account", verify=ctx))
        yield Stack(public_url, ctx, live_server.url, gates, api)
    finally:
        for proc in reversed(procs):
            proc.stop()
        shutil.rmtree(work, ignore_errors=True)


# -- tokens from the live did-auth ---------------------------------------------------------


def login(issuer: str, *, scope: str = "account:read", audience: str = AUD,
          headers: dict[str, str] | None = None, key: bytes | None = None,
          address: str | None = None, **extra: Any) -> dict[str, Any]:
    if key is None or address is None:
        address, key = siwe_text.new_account()
    nonce = httpx.post(issuer + "/siwe/nonce", json={"client_id": "dapp"}).json()["nonce"]
    text = siwe_text.message(address, nonce)
    body = {"client_id": "dapp", "message": text, "signature": siwe_text.sign(text, key),
            "scope": scope, "audience": audience, **extra}
    r = httpx.post(issuer + "/siwe/verify", json=body, headers=headers)
    assert r.status_code == 200, r.text
    tokens: dict[str, Any] = r.json()
    return tokens


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def dpop_login(issuer: str, scope: str) -> tuple[str, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    proof = make_dpop_proof(key, htm="POST", htu=issuer + "/siwe/verify")
    tokens = login(issuer, scope=scope, headers={"DPoP": proof})
    assert tokens["token_type"] == "DPoP"
    return tokens["access_token"], key


# -- the tests -------------------------------------------------------------------------------


def test_bearer_token_reaches_the_api_with_its_identity(stack: Stack) -> None:
    tokens = login(stack.issuer, scope="account:read")
    with stack.client() as c:
        # headers the client forges for the API are replaced by nginx with what the gate checked
        forged = {"X-Auth-Subject": "did:pkh:eip155:1:0xforged", "X-Auth-Scope": "admin"}
        r = c.get(stack.url + "/account", headers={**bearer(tokens["access_token"]), **forged})
        assert r.status_code == 200, r.text
        echo = r.json()
        assert echo["subject"].startswith("did:pkh:eip155:31337:0x")
        assert echo["scope"] == "account:read"
        assert echo["client_id"] == "dapp"
        assert echo["session"]
        assert echo["authorization"] is None  # the API never sees the token
        r = c.get(stack.url + "/orders/42", headers=bearer(tokens["access_token"]))
        assert r.status_code == 200 and r.json()["path"] == "/orders/42"


def test_no_token_is_401_with_the_challenge_at_the_client(stack: Stack) -> None:
    with stack.client() as c:
        r = c.get(stack.url + "/account")
    assert r.status_code == 401
    # RFC 6750 §3.1: no error code when the request has no credentials
    assert r.headers["www-authenticate"] == f'Bearer realm="{AUD}", DPoP algs="ES256 EdDSA"'
    assert r.json()["error"] == "unauthorized"


def test_invalid_token_is_401_invalid_token(stack: Stack) -> None:
    with stack.client() as c:
        r = c.get(stack.url + "/account", headers=bearer("eyJhbGciOiJFUzI1NiJ9.e30.c2ln"))
    assert r.status_code == 401
    assert r.headers["www-authenticate"].startswith(f'Bearer realm="{AUD}", error="invalid_token"')
    assert r.json() == {"error": "invalid_token"}


def test_wrong_scope_is_403_insufficient_scope(stack: Stack) -> None:
    tokens = login(stack.issuer, scope="account:read")
    with stack.client() as c:
        r = c.post(stack.url + "/orders", headers=bearer(tokens["access_token"]), json={})
    assert r.status_code == 403
    challenge = r.headers["www-authenticate"]
    assert 'error="insufficient_scope"' in challenge and 'scope="trade:write"' in challenge
    assert r.json() == {"error": "insufficient_scope"}


def test_dpop_token_accepted_once_per_proof_across_replicas(stack: Stack) -> None:
    token, key = dpop_login(stack.issuer, "account:read trade:write")
    url = stack.url + "/orders"
    with stack.client() as c:
        proof = make_dpop_proof(key, htm="POST", htu=url, access_token=token)
        r = c.post(url, headers={"Authorization": f"DPoP {token}", "DPoP": proof}, json={})
        assert r.status_code == 200, r.text
        assert r.json()["scope"] == "account:read trade:write"
        # the same proof again, a few times: nginx alternates between the two gate replicas,
        # so at least one replay reaches the replica that did not see it (Redis SET NX)
        for _ in range(3):
            r = c.post(url, headers={"Authorization": f"DPoP {token}", "DPoP": proof}, json={})
            assert r.status_code == 401
            assert r.headers["www-authenticate"].startswith('DPoP realm="trading-api", '
                                                            'error="invalid_dpop_proof"')
        # a fresh proof works; a proof for another URL does not; nor the token as a bearer
        fresh = make_dpop_proof(key, htm="POST", htu=url, access_token=token)
        r = c.post(url, headers={"Authorization": f"DPoP {token}", "DPoP": fresh}, json={})
        assert r.status_code == 200
        other = make_dpop_proof(key, htm="POST", htu=stack.url + "/withdrawals",
                                access_token=token)
        r = c.post(url, headers={"Authorization": f"DPoP {token}", "DPoP": other}, json={})
        assert r.status_code == 401 and 'error="invalid_dpop_proof"' in r.headers["www-authenticate"]
        r = c.post(url, headers=bearer(token), json={})
        assert r.status_code == 401 and 'error="invalid_token"' in r.headers["www-authenticate"]


def test_replay_straight_to_the_other_replica_is_refused(stack: Stack) -> None:
    token, key = dpop_login(stack.issuer, "account:read trade:write")
    proof = make_dpop_proof(key, htm="POST", htu=stack.url + "/orders", access_token=token)
    headers = {"Authorization": f"DPoP {token}", "DPoP": proof, "X-Original-Method": "POST",
               "X-Original-URI": "/orders"}
    first = httpx.get(stack.gates[0].url + "/check", headers=headers)
    again = httpx.get(stack.gates[1].url + "/check", headers=headers)
    assert first.status_code == 200, first.text
    assert again.status_code == 401 and again.json()["error"] == "invalid_dpop_proof"


def test_revoked_token_is_refused_at_nginx(stack: Stack) -> None:
    tokens = login(stack.issuer, scope="account:read")
    with stack.client() as c:
        assert c.get(stack.url + "/account", headers=bearer(tokens["access_token"])).status_code == 200
        r = httpx.post(stack.issuer + "/revoke",
                       data={"token": tokens["access_token"], "client_id": "dapp"})
        assert r.status_code == 200, r.text

        def refused() -> bool:
            r = c.get(stack.url + "/account", headers=bearer(tokens["access_token"]))
            return r.status_code == 401 and 'error="invalid_token"' in r.headers["www-authenticate"]

        wait_until(refused, timeout=10, what="the revoked token refused at nginx")


async def test_withdrawal_route_takes_only_a_withdrawal_token_once(stack: Stack) -> None:
    """Attacks: a token without wallet:withdraw, a stolen OTP step-up login token (no
    authorization_details) and a withdrawal token replayed (nginx alternates between the two
    gate replicas, which share the used jtis in Redis). The approved details reach the API
    in X-Auth-Authorization-Details, replacing any the client sent."""
    async with httpx.AsyncClient(base_url=stack.issuer, timeout=20) as did_auth:
        session = await wd.login(did_auth)
        await session.enrol_otp()
        with stack.client() as c:
            plain = login(stack.issuer, scope="account:read", key=session.key,
                          address=session.address)
            r = c.post(stack.url + "/withdrawals", headers=bearer(plain["access_token"]),
                       json={})
            # no wallet:withdraw scope at all: 403
            assert r.status_code == 403
            assert 'scope="wallet:withdraw"' in r.headers["www-authenticate"]
            stepped = login(stack.issuer, scope="account:read wallet:withdraw",
                            key=session.key, address=session.address,
                            otp=session.next_code())
            r = c.post(stack.url + "/withdrawals", headers=bearer(stepped["access_token"]),
                       json={})
            assert r.status_code == 403, r.text
            challenge = r.headers["www-authenticate"]
            assert 'error="insufficient_scope"' in challenge
            assert "approves no specific withdrawal" in challenge
            assert r.json() == {"error": "insufficient_scope"}
            # a withdrawal token (another account: each TOTP code serves once per step)
            wallet = await wd.login(did_auth)
            await wallet.enrol_otp()
            r = await wallet.authorize(await wallet.approval_body(wd.details(amount="1")))
            assert r.status_code == 200, r.text
            token = r.json()["access_token"]
            forged = {"X-Auth-Authorization-Details": '[{"type":"withdrawal","amount":"9"}]'}
            r = c.post(stack.url + "/withdrawals", headers={**bearer(token), **forged},
                       json={"amount": "1"})
            assert r.status_code == 200, r.text
            echo = r.json()
            assert "wallet:withdraw" in echo["scope"].split()
            assert json.loads(echo["authorization_details"]) == [wd.details(amount="1")]
            for _ in range(2):
                r = c.post(stack.url + "/withdrawals", headers=bearer(token), json={})
                assert r.status_code == 401
                assert r.headers["www-authenticate"].startswith(
                    f'Bearer realm="{AUD}", error="invalid_token"')
                assert "already used" in r.headers["www-authenticate"]


def test_unlisted_route_is_denied_whatever_the_token(stack: Stack) -> None:
    tokens = login(stack.issuer, scope="account:read trade:write")
    with stack.client() as c:
        for method, path in (("GET", "/admin"), ("DELETE", "/orders/1"), ("GET", "/orders"),
                             ("GET", "/account/../admin"), ("GET", "//account")):
            r = c.request(method, stack.url + path, headers=bearer(tokens["access_token"]))
            assert r.status_code == 403, (method, path, r.text)
        # forward-auth headers of the client's making do not change the route nginx checks
        r = c.get(stack.url + "/admin", headers={**bearer(tokens["access_token"]),
                                                 "X-Forwarded-Uri": "/account",
                                                 "X-Forwarded-Method": "GET",
                                                 "X-Original-URI": "/account"})
        assert r.status_code == 403


def test_original_request_headers_from_an_untrusted_peer_are_ignored(stack: Stack) -> None:
    tokens = login(stack.issuer, scope="account:read")
    headers = {**bearer(tokens["access_token"]), "X-Original-Method": "GET",
               "X-Original-URI": "/account"}
    gate = stack.gates[0].url + "/check"
    # 127.0.0.2 is loopback but not in trusted_proxies (127.0.0.1/32)
    transport = httpx.HTTPTransport(local_address="127.0.0.2")
    with httpx.Client(transport=transport) as untrusted:
        r = untrusted.get(gate, headers=headers)
        assert r.status_code == 403 and r.json()["error"] == "access_denied"
        forwarded = {**bearer(tokens["access_token"]), "X-Forwarded-Method": "GET",
                     "X-Forwarded-Uri": "/account"}
        assert untrusted.get(gate, headers=forwarded).status_code == 403
    # the same request from the trusted proxy's address is allowed; the Traefik/Caddy
    # spelling is not read by a gate configured for nginx (proxy = "nginx", the default)
    assert httpx.get(gate, headers=headers).status_code == 200
    r = httpx.get(gate, headers=forwarded)
    assert r.status_code == 403 and r.json()["error"] == "access_denied"
    r = httpx.get(gate, headers={**headers, "X-Forwarded-Uri": "/orders/1"})
    assert r.status_code == 403 and "X-Forwarded" in r.json()["error_description"]
    assert httpx.get(gate, headers=bearer(tokens["access_token"])).status_code == 403


def test_metrics_and_health(stack: Stack) -> None:
    r = httpx.get(stack.gates[0].url + "/healthz")
    assert r.status_code == 200 and r.json()["status"] == "ok"
    assert httpx.post(stack.gates[0].url + "/check").status_code == 405
    assert httpx.get(stack.gates[0].url + "/nothing").status_code == 404
    text = httpx.get(stack.gates[0].url + "/metrics").text
    assert 'didauth_gate_checks_total{outcome="allowed"}' in text
    assert "didauth_gate_check_seconds_bucket" in text
    samples = dict(line.rsplit(" ", 1) for line in text.splitlines() if not line.startswith("#"))
    age = float(samples["didauth_gate_revocation_feed_age_seconds"])
    assert 0 <= age < 30


def test_gate_down_is_503_at_nginx(stack: Stack, tmp_path: Path) -> None:
    """Fail closed: nginx in front of a gate that does not answer refuses with 503."""
    ca = trustme.CA()
    leaf = ca.issue_cert("localhost")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    leaf.private_key_and_cert_chain_pem.write_to_path(str(cert))
    leaf.private_key_pem.write_to_path(str(key))
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    https = free_port()
    site = render_gateway([f"http://127.0.0.1:{free_port()}"], stack.api.url, https, free_port(),
                          cert, key)
    nginx = start_nginx(tmp_path / "nginx", site, f"https://localhost:{https}/", verify=ctx)
    try:
        tokens = login(stack.issuer, scope="account:read")
        r = httpx.get(f"https://localhost:{https}/account", verify=ctx,
                      headers=bearer(tokens["access_token"]))
        assert r.status_code == 503 and r.headers["retry-after"] == "5"
        assert r.json() == {"error": "temporarily_unavailable"}
    finally:
        nginx.stop()
