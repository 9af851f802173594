"""Incident: `did-auth sessions revoke-all` ends every session at once, everywhere.

Attack: a signing key leaked (or the KEK with a Redis copy); the attacker holds sessions and
access tokens of many users. Before, did-auth had no single command to end them all: the
runbook deleted session records by hand (refresh only; access tokens stayed valid at every
verifier until `exp`). Now one command writes a global cut-off T to the store and one feed
entry `{"all": true, "before": T, "exp": ...}`: every refresh of a session authenticated at
or before T fails (invalid_grant), did-auth's own resources (/userinfo, /introspect, /otp/*,
/transactions/*) refuse tokens with `auth_time`/`iat` <= T, and a verifier following the feed
refuses them within seconds. Every session is also announced by `sid`, the entry kind older
verifiers know (they ignore an `all` entry). A login after T works.
"""

from __future__ import annotations

import base64
import json
import math
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from did_auth_verifier.revocations import RevocationSet

from did_auth.verifier import InvalidToken, JWKSCache, TokenVerifier
from tests.fixtures.redis_server import RedisServer, free_port
from tests.fixtures.servers import LiveServer, config_dict, start_server, stop_server
from tests.live_login import siwe_login
from tests.waits import wait_until

WAIT = 10.0  # seconds the revocation may take to reach the verifier (it is pushed: < 1 s)


@pytest.fixture(scope="module")
def incident_server(redis_server: RedisServer) -> Iterator[LiveServer]:
    """A server of its own (its own Redis database): revoke-all ends every session on it."""
    server = start_server(
        config_dict(redis_url=redis_server.own_db(9), key_encryption_key_file="kek.bin",
                    audit_log="audit.log"),
        start_timeout=180,  # a loaded machine starts slowly
    )
    yield server
    stop_server(server)


def _cli(workdir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin"}
    return subprocess.run(
        [sys.executable, "-m", "did_auth", "sessions", "revoke-all", *args],
        cwd=workdir, env=env, capture_output=True, text=True, timeout=60, check=False,
    )


def _claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    claims: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return claims


def _refresh(server: LiveServer, refresh_token: str) -> httpx.Response:
    return httpx.post(server.url + "/token", data={
        "grant_type": "refresh_token", "client_id": "dapp", "refresh_token": refresh_token,
    })


def _userinfo(server: LiveServer, token: str) -> int:
    r = httpx.get(server.url + "/userinfo", headers={"Authorization": f"Bearer {token}"})
    return r.status_code


def _refused(verifier: TokenVerifier, token: str) -> bool:
    try:
        verifier.verify(token)
    except InvalidToken as exc:
        assert exc.reason == "revoked", exc
        return True
    return False


def test_revoke_all_ends_every_session_at_the_server_and_the_verifier(
    incident_server: LiveServer,
) -> None:
    server = incident_server
    # Tokens for did-auth itself (so /userinfo takes them) and the verifier of that audience.
    verifier = TokenVerifier(server.url, server.url, JWKSCache.for_issuer(server.url))
    try:
        a = siwe_login(server.url, audience=server.url)
        b = siwe_login(server.url, audience=server.url)
        for tokens in (a, b):  # live before: the checks below are not vacuous
            assert _userinfo(server, tokens["access_token"]) == 200
            assert verifier.verify(tokens["access_token"]).sub.startswith("did:pkh:")
        # One refresh before the incident: the rotated token is the one presented after.
        a = {**a, **_refresh(server, a["refresh_token"]).json()}
        assert _userinfo(server, a["access_token"]) == 200

        done = _cli(server.workdir, "--config", str(server.workdir / "did-auth.toml"),
                    "--reason", "signing key leaked (INC-42)")
        assert done.returncode == 0, done.stderr
        lines = done.stdout.strip().splitlines()
        assert len(lines) == 1, done.stdout
        before = int(lines[0].split("cut-off ")[1].split()[0])
        assert abs(before - time.time()) < 30
        for tokens in (a, b):
            assert _claims(tokens["access_token"])["iat"] <= before

        # Refresh: the session is over (invalid_grant, like a revoked session).
        for tokens in (a, b):
            r = _refresh(server, tokens["refresh_token"])
            assert r.status_code == 400, r.text
            assert r.json()["error"] == "invalid_grant"
        # did-auth's own resources refuse the access tokens at once.
        for tokens in (a, b):
            assert _userinfo(server, tokens["access_token"]) == 401
        # The verifier following the feed refuses them within seconds.
        for tokens in (a, b):
            token = tokens["access_token"]
            wait_until(lambda t=token: _refused(verifier, t), WAIT,  # type: ignore[misc]
                       what="the verifier to refuse a token issued before the cut-off")

        # The feed: one `all` entry (new verifiers) and each session's sid (older ones).
        feed = httpx.get(server.url + "/revocations").json()["revoked"]
        every = [e for e in feed if e.get("all") is True]
        assert len(every) == 1 and every[0]["before"] == before
        assert every[0]["exp"] >= before + 300  # covers the longest access token
        sids = {e.get("sid") for e in feed}
        assert {_claims(t["access_token"])["sid"] for t in (a, b)} <= sids
        # Each half is enough alone: the `all` entry (this release), the sids (a verifier
        # older than the `all` entry, which ignores it).
        only_all, without_all = RevocationSet(), RevocationSet()
        assert only_all.apply(every) == 1
        without_all.apply([e for e in feed if "all" not in e])
        for tokens in (a, b):
            claims = _claims(tokens["access_token"])
            assert only_all.is_revoked(claims) and without_all.is_revoked(claims)

        # Audit: one record with the operator's reason.
        audit = [json.loads(line) for line in (server.workdir / "audit.log").read_text()
                 .splitlines()]
        record = [r for r in audit if r["event"] == "sessions_revoked_all"]
        assert len(record) == 1
        assert record[0]["reason"] == "signing key leaked (INC-42)"
        assert record[0]["before"] == before

        # A login after the cut-off (the next second: the rule covers T's whole second)
        # works everywhere, and refreshes.
        wait_until(lambda: math.floor(time.time()) > before, 3.0, what="the second after T")
        c = siwe_login(server.url, audience=server.url)
        assert _claims(c["access_token"])["iat"] > before
        assert _userinfo(server, c["access_token"]) == 200
        assert verifier.verify(c["access_token"]).sub.startswith("did:pkh:")
        r = _refresh(server, c["refresh_token"])
        assert r.status_code == 200, r.text
        assert _userinfo(server, r.json()["access_token"]) == 200
        assert verifier.verify(r.json()["access_token"]).sub.startswith("did:pkh:")
    finally:
        verifier.close()


def test_redis_down_is_one_line_and_exit_1(tmp_path: Path) -> None:
    cfg = tmp_path / "did-auth.toml"
    port = free_port()  # nothing listens there
    cfg.write_text(f'issuer = "http://127.0.0.1:8000"\nredis_url = "redis://127.0.0.1:{port}/0"\n'
                   'key_encryption_key_file = "kek.bin"\n')
    done = _cli(tmp_path, "--config", str(cfg))
    assert done.returncode == 1
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert f"cannot reach Redis at redis://127.0.0.1:{port}/0" in lines[0]


def test_memory_store_is_refused_with_one_line(tmp_path: Path) -> None:
    cfg = tmp_path / "did-auth.toml"
    cfg.write_text('issuer = "http://127.0.0.1:8000"\n')
    done = _cli(tmp_path, "--config", str(cfg))
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "redis_url" in lines[0] and "Traceback" not in done.stderr
