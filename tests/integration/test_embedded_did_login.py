"""`did-auth serve` with no config: DID logins (did:ethr on the embedded chain, did:key)."""

from __future__ import annotations

import time

import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from eth_account import Account

from did_auth.core.did.jwt_proof import sign_proof
from tests.fixtures.servers import start_server, stop_server

B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def b58(data: bytes) -> str:
    n = int.from_bytes(data, "big")
    out = ""
    while n:
        n, r = divmod(n, 58)
        out = B58[r] + out
    return "1" * (len(data) - len(data.lstrip(b"\0"))) + out


def _login(base: str, did: str, alg: str, key: bytes) -> httpx.Response:
    ch = httpx.post(base + "/did/challenge", json={"client_id": "demo", "did": did})
    assert ch.status_code == 200, ch.text
    c = ch.json()
    now = int(time.time())
    proof = sign_proof({"iss": did, "aud": c["audience"], "nonce": c["challenge"], "iat": now,
                        "exp": now + 60}, alg=alg, private_key=key)
    return httpx.post(base + "/did/verify", json={"client_id": "demo", "proof": proof})


def test_did_logins_on_embedded_defaults() -> None:
    server = start_server({})
    try:
        acct = Account.create()
        did = f"did:ethr:0x7a69:{acct.address}"
        r = _login(server.url, did, "ES256K-R", bytes(acct.key))
        assert r.status_code == 200, r.text
        claims = jwt.decode(r.json()["access_token"], options={"verify_signature": False})
        assert claims["sub"] == did and claims["amr"] == ["did"]
        # someone else's key cannot log in as this DID
        other = Account.create()
        r = _login(server.url, did, "ES256K-R", bytes(other.key))
        assert r.status_code in (400, 403) and r.json()["error"] in ("invalid_grant", "access_denied")
        # did:key (Ed25519): the key itself
        sk = ed25519.Ed25519PrivateKey.generate()
        raw = sk.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                               serialization.NoEncryption())
        pub = sk.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        did_key = "did:key:z" + b58(b"\xed\x01" + pub)
        r = _login(server.url, did_key, "EdDSA", raw)
        assert r.status_code == 200, r.text
        # replaying a used challenge fails
        ch = httpx.post(server.url + "/did/challenge", json={"client_id": "demo", "did": did_key}).json()
        now = int(time.time())
        proof = sign_proof({"iss": did_key, "aud": ch["audience"], "nonce": ch["challenge"], "iat": now,
                            "exp": now + 60}, alg="EdDSA", private_key=raw)
        assert httpx.post(server.url + "/did/verify", json={"client_id": "demo", "proof": proof}).status_code == 200
        again = httpx.post(server.url + "/did/verify", json={"client_id": "demo", "proof": proof})
        assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    finally:
        stop_server(server)
