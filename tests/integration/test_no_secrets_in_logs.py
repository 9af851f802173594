"""Audit trail and server logs never contain a signature, token, OTP, proof or key."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pyotp
from cryptography.hazmat.primitives.asymmetric import ec

from did_auth.core.oauth.client_auth import hash_secret
from did_auth.verifier.dpop import make_dpop_proof
from tests import siwe_text
from tests.fixtures.redis_server import RedisServer
from tests.fixtures.servers import config_dict, start_server, stop_server


def test_audit_and_logs_hold_no_secrets(redis_server: RedisServer, tmp_path: Path) -> None:
    audit = tmp_path / "audit.jsonl"
    cfg = config_dict(
        redis_url=redis_server.own_db(4), key_encryption_key_file=str(tmp_path / "kek.bin"),
        audit_log=str(audit),
        resource_servers=[{"name": "trading-api", "secret_hash": hash_secret("rs-secret-value-123")}],
    )
    server = start_server(cfg)
    secrets: list[str] = ["rs-secret-value-123"]
    try:
        base = server.url
        address, key = siwe_text.new_account()

        def login(**extra: object) -> httpx.Response:
            n = httpx.post(base + "/siwe/nonce", json={"client_id": "dapp"}).json()["nonce"]
            text = siwe_text.message(address, n)
            sig = siwe_text.sign(text, key)
            secrets.extend([sig, sig[2:66], text])
            headers = extra.pop("headers", None)
            return httpx.post(base + "/siwe/verify", headers=headers,  # type: ignore[arg-type]
                              json={"client_id": "dapp", "message": text, "signature": sig, **extra})

        tok = login().json()
        secrets += [tok["access_token"], tok["refresh_token"]]
        # a forged signature and a replay (failure paths log too)
        n = httpx.post(base + "/siwe/nonce", json={"client_id": "dapp"}).json()["nonce"]
        text = siwe_text.message(address, n)
        bad = siwe_text.sign(text, siwe_text.new_account()[1])
        secrets.append(bad)
        httpx.post(base + "/siwe/verify", json={"client_id": "dapp", "message": text, "signature": bad})
        # OTP enrolment and a step-up login (with a wrong code first)
        # (with a token for did-auth itself: its /otp routes refuse other audiences)
        own = login(audience=base).json()
        secrets += [own["access_token"], own["refresh_token"]]
        auth = {"Authorization": f"Bearer {own['access_token']}"}
        enrol = httpx.post(base + "/otp/enroll", headers=auth).json()
        totp = pyotp.TOTP(enrol["secret"])
        secrets += [enrol["secret"], enrol["otpauth_uri"]]
        code = totp.now()
        httpx.post(base + "/otp/confirm", headers=auth, json={"otp": code})
        login(scope="wallet:withdraw", otp="123456")
        step = login(scope="account:read wallet:withdraw", otp=totp.at(time.time() + 30)).json()
        secrets += [step["access_token"], step["refresh_token"], code, totp.at(time.time() + 30)]
        # DPoP-bound login and refresh
        k = ec.generate_private_key(ec.SECP256R1())
        proof = make_dpop_proof(k, htm="POST", htu=base + "/siwe/verify")
        d = login(headers={"DPoP": proof}).json()
        proof2 = make_dpop_proof(k, htm="POST", htu=base + "/token")
        r = httpx.post(base + "/token", headers={"DPoP": proof2}, data={
            "grant_type": "refresh_token", "client_id": "dapp", "refresh_token": d["refresh_token"]})
        secrets += [proof, proof2, d["access_token"], d["refresh_token"], r.json()["refresh_token"]]
        # reuse of a rotated refresh token, introspection, revocation
        httpx.post(base + "/token", data={"grant_type": "refresh_token", "client_id": "dapp",
                                          "refresh_token": d["refresh_token"]}, headers={"DPoP": proof2})
        httpx.post(base + "/introspect", data={"token": tok["access_token"]},
                   auth=("trading-api", "rs-secret-value-123"))
        httpx.post(base + "/revoke", data={"token": tok["refresh_token"], "client_id": "dapp"})
    finally:
        stop_server(server)
    text_audit = audit.read_text()
    assert "login_success" in text_audit and "login_failure" in text_audit
    haystack = text_audit + server.output()
    kek = (tmp_path / "kek.bin").read_bytes()
    secrets += [kek.hex()]
    for secret in secrets:
        assert secret and secret not in haystack, f"secret leaked: {secret[:24]}..."
    for marker in ("eyJ", "rt_", "wants you to sign in", "otpauth://"):
        assert marker not in haystack, marker
