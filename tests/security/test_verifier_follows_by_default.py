"""Secure by default: the verifier and the example trading API follow the revocation feed.

Attack: a user logs out or revokes a stolen token at the issuer (RFC 7009). Before, a
`TokenVerifier` built the documented way (issuer, audience, JWKS) and
`examples/trading_api.py` started without `--follow-revocations` never looked at the feed
and kept accepting the revoked token until it expired. Now both follow
`{issuer}/revocations` unless told not to (`follow_revocations=False` /
`--no-follow-revocations`, documented as unsafe).
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from did_auth.verifier import InvalidToken, JWKSCache, TokenVerifier
from tests.edge.web.procs import ROOT, Proc, spawn
from tests.fixtures.redis_server import free_port
from tests.fixtures.servers import LiveServer
from tests.live_login import access_token

WAIT = 10.0  # seconds a revocation may take to reach a verifier polling every second




def _revoke(server: LiveServer, token: str) -> None:
    r = httpx.post(server.url + "/revoke", data={"token": token, "client_id": "dapp"})
    assert r.status_code == 200, r.text


def test_default_verifier_refuses_a_revoked_token(live_server: LiveServer) -> None:
    verifier = TokenVerifier(
        live_server.url, "trading-api", JWKSCache.for_issuer(live_server.url)
    )
    try:
        token = access_token(live_server.url)
        assert verifier.verify(token).sub.startswith("did:pkh:")
        _revoke(live_server, token)
        deadline = time.monotonic() + WAIT
        while True:
            try:
                verifier.verify(token)
            except InvalidToken as exc:
                assert exc.reason == "revoked"
                break
            assert time.monotonic() < deadline, "the default verifier accepts a revoked token"
            time.sleep(0.05)
    finally:
        verifier.close()


def test_opting_out_is_explicit(live_server: LiveServer) -> None:
    unsafe = TokenVerifier(
        live_server.url, "trading-api", JWKSCache.for_issuer(live_server.url),
        follow_revocations=False,
    )
    assert unsafe.revocations is None
    with pytest.raises(ValueError, match="follow_revocations=False"):
        # A plain-http, non-loopback issuer cannot be followed safely: refused up front
        # rather than silently not checking revocations.
        TokenVerifier("http://issuer.example", "trading-api", JWKSCache.for_issuer(
            "http://issuer.example", allow_insecure_http=True))


@pytest.fixture
def trading_api(live_server: LiveServer) -> Iterator[Proc]:
    """`examples/trading_api.py` with no revocation flag at all."""
    port = free_port()
    log = Path(tempfile.mkdtemp(prefix="trading-default-")) / "api.log"
    api = spawn(
        [
            sys.executable, str(ROOT / "examples" / "trading_api.py"),
            "--issuer", live_server.url, "--audience", "trading-api", "--port", str(port),
        ],
        f"http://127.0.0.1:{port}",
        log,
    )
    yield api
    api.stop()


def test_example_trading_api_refuses_a_revoked_token_by_default(
    live_server: LiveServer, trading_api: Proc
) -> None:
    token = access_token(live_server.url)
    headers = {"Authorization": f"Bearer {token}"}
    assert httpx.get(trading_api.url + "/account", headers=headers).status_code == 200
    _revoke(live_server, token)
    deadline = time.monotonic() + WAIT
    while True:
        r = httpx.get(trading_api.url + "/account", headers=headers)
        if r.status_code == 401:
            assert 'error="invalid_token"' in r.headers["www-authenticate"]
            assert r.json()["error_description"] == "token revoked"
            break
        assert r.status_code == 200, r.text
        assert time.monotonic() < deadline, "the example accepts a revoked token by default"
        time.sleep(0.1)
