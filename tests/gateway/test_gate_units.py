"""did-auth-gate's parts on their own: gate.toml validation (one line per problem, exit 1),
the route table and canonical paths, the check against a stand-in issuer (step-up, claims,
original-request headers, a stale revocation feed), and the HTTP/1.1 server (keep-alive,
pipelining, limits)."""

from __future__ import annotations

import asyncio
import json
import secrets
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import tomli_w
from did_auth_verifier import JWKSCache, RevocationSet, TokenVerifier
from did_auth_verifier.clock import FixedClock
from did_auth_verifier.gate import ConfigError, parse_config
from did_auth_verifier.gate.check import Answer, GateCheck
from did_auth_verifier.gate.decisions import Decisions, FollowedFeed
from did_auth_verifier.gate.metrics import GateMetrics
from did_auth_verifier.gate.routes import Route, RouteTable, canonical_path
from did_auth_verifier.gate.server import HttpServer, Request

from tests.fixtures.redis_server import RedisServer
from tests.gateway.issuer import StubIssuer
from tests.gateway.stack import GATE, ROUTES, gate_config, start_gate
from tests.waits import wait_until

WITHDRAWAL: dict[str, str] = {
    "type": "withdrawal", "audience": "trading-api", "asset": "USDC", "amount": "1",
    "destination": "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed", "network": "ethereum",
}
VALID: dict[str, Any] = {
    "issuer": "https://auth.example.com", "audience": "trading-api",
    "listen": "127.0.0.1:9180", "public_url": "https://api.example.com",
    "trusted_proxies": ["127.0.0.1/32"], "routes": ROUTES,
}


# -- configuration ---------------------------------------------------------------------------


def problems(**over: Any) -> list[str]:
    data = {k: v for k, v in {**VALID, **over}.items() if v is not None}
    try:
        parse_config(data, "gate.toml")
    except ConfigError as exc:
        return exc.problems
    return []


def test_the_interface_example_is_valid() -> None:
    cfg = parse_config(VALID)
    assert (cfg.host, cfg.port, len(cfg.routes)) == ("127.0.0.1", 9180, 4)
    assert cfg.max_staleness == 30 and cfg.follow_revocations and cfg.redis_url is None


@pytest.mark.parametrize(("over", "expected"), [
    ({"issuer": None}, "gate.toml: issuer: required"),
    ({"issuer": "http://auth.example.com"}, "gate.toml: issuer: plain http only to a loopback"),
    ({"audience": 5}, "gate.toml: audience: must be a non-empty string"),
    ({"listen": "9180"}, "gate.toml: listen: must be HOST:PORT"),
    ({"public_url": "ftp://x"}, "gate.toml: public_url: URI scheme must be http or https"),
    ({"trusted_proxies": ["10.0.0.300/8"]}, "gate.toml: trusted_proxies[0]: '10.0.0.300/8'"),
    ({"trusted_proxies": []}, "gate.toml: trusted_proxies: required"),
    ({"trusted_proxies": None}, "gate.toml: trusted_proxies: required"),
    ({"redis_url": "http://x"}, "gate.toml: redis_url: must be a redis://"),
    ({"max_staleness": 0}, "gate.toml: max_staleness: must be more than 0"),
    ({"routes": []}, "gate.toml: routes: must be one or more"),
    ({"routes": [{"method": "GET", "path": "/a/*/b"}]}, "gate.toml: routes[0].path: '*'"),
    ({"routes": [{"method": "get", "path": "/a"}]}, "gate.toml: routes[0].method: must be one"),
    ({"routes": [{"method": "GET", "path": "/a", "scope": ["x"]}]},
     "gate.toml: routes[0].scope: unknown key"),
    ({"routes": [{"method": "GET", "path": "/a", "scopes": "x"}]},
     "gate.toml: routes[0].scopes: must be a list"),
    ({"routes": [{"method": "GET", "path": "/a"}, {"method": "GET", "path": "/a"}]},
     "gate.toml: routes[1]: GET /a is listed twice"),
    ({"colour": "red"}, "gate.toml: colour: unknown key"),
    ({"routes": [{"method": "POST", "path": "/w", "scopes": ["wallet:withdraw"]}]},
     "gate.toml: routes[0].withdrawal: a route granting wallet:withdraw needs withdrawal = true"),
    ({"routes": [{"method": "POST", "path": "/w", "withdrawal": "yes"}]},
     "gate.toml: routes[0].withdrawal: must be true or false"),
])
def test_each_problem_is_one_line_naming_its_key(over: dict[str, Any], expected: str) -> None:
    found = problems(**over)
    assert len(found) == 1 and found[0].startswith(expected), found


def test_bad_config_prints_one_line_per_problem_and_exits_1(tmp_path: Path) -> None:
    bad = tmp_path / "gate.toml"
    bad.write_text(tomli_w.dumps({**VALID, "listen": "nowhere"}))
    r = subprocess.run([GATE, "--config", str(bad)], capture_output=True, text=True, timeout=30)
    assert r.returncode == 1
    assert r.stderr == f"{bad}: listen: must be HOST:PORT\n" and r.stdout == ""
    bad.write_text(tomli_w.dumps({**VALID, "listen": "nowhere", "audience": ""}))
    r = subprocess.run([GATE, "--config", str(bad)], capture_output=True, text=True, timeout=30)
    assert r.returncode == 1 and len(r.stderr.splitlines()) == 2
    bad.write_text("issuer = ")
    r = subprocess.run([GATE, "--config", str(bad)], capture_output=True, text=True, timeout=30)
    assert r.returncode == 1 and len(r.stderr.splitlines()) == 1
    assert "not valid TOML" in r.stderr and "Traceback" not in r.stderr
    r = subprocess.run([GATE, "--config", str(tmp_path / "missing.toml")], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "cannot read" in r.stderr
    bad.write_text(tomli_w.dumps(VALID))
    r = subprocess.run([GATE, "--config", str(bad), "--check-config"], capture_output=True,
                       text=True, timeout=30)
    assert (r.returncode, r.stdout) == (0, "ok\n")


# -- routes and paths ------------------------------------------------------------------------


@pytest.mark.parametrize(("uri", "path"), [
    ("/orders", "/orders"), ("/orders?x=/admin", "/orders"), ("/%6Frders", "/orders"),
    ("/a%20b", "/a%20b"), ("/a%2cb", "/a%2Cb"), ("/orders/", "/orders/"),
])
def test_canonical_paths(uri: str, path: str) -> None:
    assert canonical_path(uri) == path


@pytest.mark.parametrize("uri", [
    "/a/../admin", "/a/./b", "//orders", "/orders//1", "/a/%2e%2e/admin", "/a%2Fb", "/a%5cb",
    "orders", "*", "http://x/orders", "/a\\b", "/é", "/a%zz", "/..",
])
def test_ambiguous_paths_are_refused(uri: str) -> None:
    with pytest.raises(ValueError):
        canonical_path(uri)


@pytest.mark.parametrize("uri", [
    # matrix parameters: servlet containers read `..;` as `..` (/orders/..;/withdrawals is
    # /withdrawals to Tomcat/Jetty/Spring)
    "/orders/..;/withdrawals", "/orders/.;/x", "/orders/1;jsessionid=x", "/orders/;/../x",
    # double encoding: `%252e%252e` is `..` to a backend that decodes twice
    "/orders/%252e%252e/withdrawals", "/orders/%25", "/orders/a%2525b",
    # encoded separators in either case
    "/orders/%2e%2e/withdrawals", "/orders/%2E%2e", "/orders/a%2fb", "/orders/a%2Fb",
    "/orders/a%5Cb", "/orders/a%5cb",
])
def test_matrix_parameters_and_double_encoding_are_refused(uri: str) -> None:
    with pytest.raises(ValueError):
        canonical_path(uri)


def test_gate_denies_dot_dot_semicolon_and_double_encoding(issuer: StubIssuer) -> None:
    """Attack (trade:write token): `/orders/..;/withdrawals` and `/orders/%252e%252e/
    withdrawals` must not be checked as the `/orders/*` route: 403 ambiguous_path."""
    check = make_check(issuer)
    token = issuer.token(scope="account:read trade:write")
    assert answer(check, token, "GET", "/orders/1").status == 200
    for uri in ("/orders/..;/withdrawals", "/orders/%252e%252e/withdrawals"):
        a = answer(check, token, "GET", uri)
        assert (a.status, a.reason) == (403, "ambiguous_path"), uri


def test_route_precedence() -> None:
    table = RouteTable([Route("GET", "/orders/*", ("a",)), Route("GET", "/orders/open", ("b",)),
                        Route("GET", "/orders/open/*", ("c",))])
    assert table.match("GET", "/orders/open") == Route("GET", "/orders/open", ("b",))
    assert table.match("GET", "/orders/open/1") == Route("GET", "/orders/open/*", ("c",))
    assert table.match("GET", "/orders/1") == Route("GET", "/orders/*", ("a",))
    assert table.match("GET", "/orders") is None and table.match("POST", "/orders/1") is None


# -- the check against a stand-in issuer -----------------------------------------------------


@pytest.fixture(scope="module")
def issuer() -> Iterator[StubIssuer]:
    stub = StubIssuer()
    yield stub
    stub.close()


def make_check(issuer: StubIssuer) -> GateCheck:
    cfg = parse_config({**VALID, "issuer": issuer.url})
    jwks = JWKSCache.for_issuer(issuer.url)
    verifier = TokenVerifier(issuer.url, "trading-api", jwks, revocations=RevocationSet())
    return GateCheck(cfg, verifier, GateMetrics())


def answer(check: GateCheck, token: str | None, method: str = "POST",
           uri: str = "/withdrawals", **headers: str) -> Answer:
    h = {"x-original-method": method, "x-original-uri": uri, **headers}
    if token is not None:
        h["authorization"] = f"Bearer {token}"
    result = check.check(True, h)
    if not isinstance(result, Answer):  # the first token fetches the JWKS in a thread
        result = asyncio.run(_await(result))
    return result


async def _await(result: Any) -> Answer:
    value: Answer = await result
    return value


def challenge(a: Answer) -> str:
    return dict(a.headers)["WWW-Authenticate"]


def test_step_up_route_needs_otp_in_amr(issuer: StubIssuer) -> None:
    """A token with the scope but no second factor: refused by the gate itself (RFC 9470),
    whatever the issuer's policy."""
    check = make_check(issuer)
    a = answer(check, issuer.token(scope="wallet:withdraw", amr=["siwe"]))
    assert a.status == 401
    assert 'error="insufficient_user_authentication"' in challenge(a)
    assert 'max_age="300"' in challenge(a)
    old = issuer.token(scope="wallet:withdraw", amr=["siwe", "otp"],
                       auth_time=int(time.time()) - 301)
    assert answer(check, old).status == 401
    ok = answer(check, issuer.token(scope="wallet:withdraw", amr=["siwe", "otp"],
                                    authorization_details=[WITHDRAWAL]))
    assert ok.status == 200 and dict(ok.headers)["X-Auth-Scope"] == "wallet:withdraw"


def test_a_remembered_decision_ends_with_any_feed_entry_and_with_a_stale_view(
    issuer: StubIssuer,
) -> None:
    """The warm path (a bearer token seen on this route before) answers without the
    verifier, but never past a revocation: any entry the feed applies, or a view older than
    max_staleness, sends the next check back to the verifier."""
    cfg = parse_config({**VALID, "issuer": issuer.url})
    clock = FixedClock(time.time())
    jwks = JWKSCache.for_issuer(issuer.url, clock=clock)
    assert jwks.refresh()  # as the gate does on start
    feed = FollowedFeed(issuer.url, max_staleness=30, clock=clock)
    assert feed.poll_once()
    verifier = TokenVerifier(issuer.url, "trading-api", jwks, revocations=feed, clock=clock)
    check = GateCheck(cfg, verifier, GateMetrics(), decisions=Decisions(jwks, feed, clock.now))
    sub = "did:pkh:eip155:1:0x" + secrets.token_hex(20)
    token = issuer.token(sub=sub)
    try:
        for _ in range(3):
            assert answer(check, token, "GET", "/account").status == 200
        assert check.metrics.remembered == 2
        # an entry about someone else still ends every remembered decision
        issuer.revoked.append({"sub": "did:pkh:eip155:1:0xother", "exp": 2**31})
        assert feed.poll_once() and feed.generation == 1
        assert answer(check, token, "GET", "/account").status == 200
        assert check.metrics.remembered == 2
        issuer.revoked.append({"sub": sub, "exp": 2**31})
        assert feed.poll_once()
        a = answer(check, token, "GET", "/account")
        assert a.status == 401 and a.reason == "revoked"
        # stale: 31 s later with no complete read, a remembered answer is not used either
        other = issuer.token()
        assert answer(check, other, "GET", "/account").status == 200
        assert answer(check, other, "GET", "/account").status == 200
        assert check.metrics.remembered == 3
        clock.advance(31)
        stale = answer(check, other, "GET", "/account")
        assert stale.status == 503 and stale.reason == "revocation_feed_stale"
    finally:
        issuer.revoked.clear()


def test_claims_that_cannot_travel_in_a_header_are_refused(issuer: StubIssuer) -> None:
    check = make_check(issuer)
    token = issuer.token(sub="did:x\r\nX-Auth-Scope: admin")
    a = answer(check, token, "GET", "/account")
    assert a.status == 401 and a.reason == "claims_not_header_safe"


def test_original_request_and_credentials_checks(issuer: StubIssuer) -> None:
    check = make_check(issuer)
    token = issuer.token()
    assert check.check(False, {"x-original-method": "GET", "x-original-uri": "/account",
                               "authorization": f"Bearer {token}"}).status == 403  # type: ignore[union-attr]
    assert answer(check, token, "GET", "/account").status == 200
    # duplicate original-request headers (joined by the server with "\n") are refused
    assert answer(check, token, "GET", "/account\n/admin").status == 403
    both = answer(check, None, "GET", "/account", authorization=f"Bearer {token}\nBearer x")
    assert both.status == 401 and 'error="invalid_request"' in challenge(both)
    basic = answer(check, None, "GET", "/account", authorization="Basic dXNlcjpwYXNz")
    assert basic.status == 401 and "error=" not in challenge(basic)
    other = answer(check, issuer.token(audience="other-api"), "GET", "/account")
    assert other.status == 401 and 'error="invalid_token"' in challenge(other)
    assert answer(check, token, "GET", "/account", dpop="a.b.c\nd.e.f").status == 401
    assert check.metrics.checks["allowed"] >= 1 and check.metrics.denials["untrusted_peer"] == 1


def test_stale_revocation_feed_fails_closed(tmp_path: Path) -> None:
    """A gate process whose issuer's feed stops answering refuses every token (503) once its
    view is older than max_staleness, and /healthz says so; it recovers with the feed."""
    stub = StubIssuer()
    cfg = gate_config(stub.url, "https://api.example.com", max_staleness=1.5,
                      revocation_interval=0.25)
    gate = start_gate(tmp_path, cfg)
    try:
        headers = {"X-Original-Method": "GET", "X-Original-URI": "/account",
                   "Authorization": f"Bearer {stub.token()}"}
        wait_until(lambda: httpx.get(gate.url + "/check", headers=headers).status_code == 200,
                   what="the gate's first complete read of the feed")
        stub.revoked.append({"sub": "did:pkh:eip155:1:0xabc", "exp": 2**31})
        def answered(status: int) -> httpx.Response | None:
            r = httpx.get(gate.url + "/check", headers=headers)
            return r if r.status_code == status else None

        r = wait_until(lambda: answered(401), what="the revocation followed")
        assert r is not None
        assert 'error="invalid_token"' in r.headers["www-authenticate"]
        stub.revoked.clear()
        stub.feed_up = False
        r = wait_until(lambda: answered(503), what="the stale feed refused")
        assert r is not None
        assert r.headers["retry-after"] == "5" and r.json()["error"] == "temporarily_unavailable"
        assert httpx.get(gate.url + "/healthz").status_code == 503
        assert "revocation_feed_stale" in httpx.get(gate.url + "/metrics").text
    finally:
        gate.stop()
        stub.close()


# -- the HTTP server -------------------------------------------------------------------------


async def test_keep_alive_pipelining_and_limits() -> None:
    async def slow(request: Request) -> tuple[int, list[tuple[str, str]], bytes]:
        await asyncio.sleep(0.01)
        return 200, [], request.path.encode()

    def handler(request: Request) -> Any:
        if request.path == "/slow":
            return slow(request)
        return 200, [("X-Peer", request.peer)], request.path.encode()

    server = HttpServer(handler, header_timeout=0.5)
    await server.start("127.0.0.1", 0)
    host, port = server.sockets[0]
    try:
        reader, writer = await asyncio.open_connection(host, port)
        # three pipelined requests, the middle one answered later: answers stay in order;
        # the second carries a small body that is skipped
        writer.write(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
                     b"GET /slow HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc"
                     b"GET /c HTTP/1.1\r\n\r\n")
        await writer.drain()
        bodies = []
        for _ in range(3):
            head = await reader.readuntil(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200 OK\r\n")
            length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
            bodies.append(await reader.readexactly(length))
        assert bodies == [b"/a", b"/slow", b"/c"]
        writer.write(b"GET /d HTTP/1.1\r\nConnection: close\r\n\r\n")
        data = await reader.read()
        assert data.startswith(b"HTTP/1.1 200") and b"Connection: close" in data
        writer.close()
        for bad, status in ((b"GET / HTTP/1.1\r\nX: " + b"a" * 20000 + b"\r\n\r\n", b"431"),
                            (b"GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", b"400"),
                            (b"NONSENSE\r\n\r\n", b"400"),
                            (b"GET / HTTP/1.1\r\nA: b\r\n folded\r\n\r\n", b"400"),
                            (b"GET / HTTP/1.1\r\nA : b\r\n\r\n", b"400")):
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(bad)
            data = await reader.read()
            assert data.startswith(b"HTTP/1.1 " + status), data[:40]
            writer.close()
        # a head never completed is closed after header_timeout
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(b"GET / HTTP/1.1\r\n")
        assert await asyncio.wait_for(reader.read(), 5) == b""
        writer.close()
    finally:
        await server.close()


# -- the header family of the configured proxy ----------------------------------------------


def make_proxy_check(issuer: StubIssuer, proxy: str | None) -> GateCheck:
    data = {**VALID, "issuer": issuer.url}
    if proxy is not None:
        data["proxy"] = proxy
    cfg = parse_config(data)
    jwks = JWKSCache.for_issuer(issuer.url)
    verifier = TokenVerifier(issuer.url, "trading-api", jwks, revocations=RevocationSet())
    return GateCheck(cfg, verifier, GateMetrics())


def decide(check: GateCheck, headers: dict[str, str]) -> Answer:
    result = check.check(True, headers)
    if not isinstance(result, Answer):
        result = asyncio.run(_await(result))
    return result


def test_forward_auth_gate_ignores_no_injected_x_original_headers(issuer: StubIssuer) -> None:
    """Attack: behind Traefik/Caddy the client's own headers reach /check. With an
    account:read token the client injects X-Original-* naming GET /account while the proxy's
    X-Forwarded-* says POST /orders/1 (needs trade:write): refused, not allowed."""
    check = make_proxy_check(issuer, "forward-auth")
    token = issuer.token(scope="account:read")
    base = {"authorization": f"Bearer {token}", "x-forwarded-method": "POST",
            "x-forwarded-uri": "/orders/1"}
    assert decide(check, base).status == 403
    injected = decide(check, {**base, "x-original-method": "GET", "x-original-uri": "/account"})
    assert injected.status == 403 and injected.reason == "foreign_proxy_headers"
    assert b"X-Original-" in injected.body
    # the route the proxy names, with the token it needs, is allowed
    ok = decide(check, {"authorization": f"Bearer {token}", "x-forwarded-method": "GET",
                        "x-forwarded-uri": "/account"})
    assert ok.status == 200
    # forward-auth mode reads only X-Forwarded-*: X-Original-* alone names no request
    alone = decide(check, {"authorization": f"Bearer {token}", "x-original-method": "GET",
                           "x-original-uri": "/account"})
    assert alone.status == 403


def test_nginx_gate_refuses_forward_auth_headers(issuer: StubIssuer) -> None:
    """The default (`proxy = "nginx"`) reads only X-Original-*; a request that also carries
    X-Forwarded-Method/-Uri (which the shipped nginx file never sends) is refused."""
    check = make_proxy_check(issuer, None)
    token = issuer.token(scope="account:read")
    ok = {"authorization": f"Bearer {token}", "x-original-method": "GET",
          "x-original-uri": "/account"}
    assert decide(check, ok).status == 200
    mixed = decide(check, {**ok, "x-forwarded-uri": "/orders/1"})
    assert mixed.status == 403 and mixed.reason == "foreign_proxy_headers"
    alone = decide(check, {"authorization": f"Bearer {token}", "x-forwarded-method": "GET",
                           "x-forwarded-uri": "/account"})
    assert alone.status == 403


def test_proxy_key_is_validated() -> None:
    found = problems(proxy="traefik")
    assert found == ['gate.toml: proxy: must be "nginx" or "forward-auth"']


# -- withdrawal routes: bound to what the wallet signed, single use ---------------------------


def test_a_plain_step_up_token_cannot_withdraw_at_the_gate(issuer: StubIssuer) -> None:
    """Attack: a stolen OTP step-up login token (wallet:withdraw, otp in amr, no
    authorization_details) used at POST /withdrawals: 403 insufficient_scope, every time."""
    check = make_check(issuer)
    token = issuer.token(scope="wallet:withdraw", amr=["siwe", "otp"])
    for _ in range(3):
        a = answer(check, token)
        assert a.status == 403 and a.reason == "withdrawal_details_missing"
        assert 'error="insufficient_scope"' in challenge(a)
        assert "approves no specific withdrawal" in challenge(a)
        assert "X-Auth-Authorization-Details" not in dict(a.headers)


def test_a_withdrawal_token_passes_once_with_its_details_forwarded(issuer: StubIssuer) -> None:
    """Attack: one approved withdrawal token replayed at the gate: the first check passes and
    forwards the approved details (compact JSON) for the API to compare with the body; the
    second and later are 401 invalid_token, never answered from the decision cache."""
    cfg = parse_config({**VALID, "issuer": issuer.url})
    jwks = JWKSCache.for_issuer(issuer.url)
    assert jwks.refresh()
    verifier = TokenVerifier(issuer.url, "trading-api", jwks, revocations=RevocationSet())
    check = GateCheck(cfg, verifier, GateMetrics(),
                      decisions=Decisions(jwks, None, time.time))
    token = issuer.token(scope="wallet:withdraw", amr=["siwe", "otp", "mfa"],
                         authorization_details=[WITHDRAWAL])
    first = answer(check, token)
    assert first.status == 200, first.body
    forwarded = dict(first.headers)["X-Auth-Authorization-Details"]
    assert forwarded == json.dumps([WITHDRAWAL], separators=(",", ":"))
    for _ in range(2):
        again = answer(check, token)
        assert again.status == 401 and again.reason == "withdrawal_used"
        assert 'error="invalid_token"' in challenge(again)
    assert check.metrics.remembered == 0
    # details approved for another API, or more than one entry: refused
    other = issuer.token(scope="wallet:withdraw", amr=["siwe", "otp", "mfa"],
                         authorization_details=[{**WITHDRAWAL, "audience": "other-api"}])
    assert answer(check, other).reason == "withdrawal_audience"
    two = issuer.token(scope="wallet:withdraw", amr=["siwe", "otp", "mfa"],
                       authorization_details=[WITHDRAWAL, WITHDRAWAL])
    assert answer(check, two).status == 403


async def test_a_withdrawal_token_is_single_use_across_gate_replicas(
    issuer: StubIssuer, redis_server: RedisServer,
) -> None:
    """Two gate checks sharing a Redis (`redis_url`): the token passes at one, and is refused
    at the other (SET NX on the token's jti)."""
    from did_auth_verifier.gate.replay import RedisReplay

    cfg = parse_config({**VALID, "issuer": issuer.url})
    jwks = JWKSCache.for_issuer(issuer.url)
    assert await asyncio.get_running_loop().run_in_executor(None, jwks.refresh)
    replicas = []
    for _ in range(2):
        verifier = TokenVerifier(issuer.url, "trading-api", jwks, revocations=RevocationSet())
        replicas.append(GateCheck(cfg, verifier, GateMetrics(),
                                  replay=RedisReplay(redis_server.url)))
    token = issuer.token(scope="wallet:withdraw", amr=["siwe", "otp", "mfa"],
                         authorization_details=[WITHDRAWAL])
    headers = {"x-original-method": "POST", "x-original-uri": "/withdrawals",
               "authorization": f"Bearer {token}"}
    try:
        results = []
        for replica in replicas:
            result = replica.check(True, headers)
            results.append(result if isinstance(result, Answer) else await result)
        assert [r.status for r in results] == [200, 401]
        assert results[1].reason == "withdrawal_used"
    finally:
        for replica in replicas:
            assert replica.replay is not None
            await replica.replay.close()
