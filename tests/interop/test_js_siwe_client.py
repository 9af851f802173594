"""An independent JavaScript client (npm `siwe` + `ethers`) logs in to a real did-auth server."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import httpx
import jwt
from eth_account import Account

from tests.fixtures.servers import LiveServer

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "tests" / "interop" / "siwe_sign.mjs"


def js_sign(payload: dict[str, object]) -> dict[str, str]:
    out = subprocess.run(
        ["node", str(SCRIPT)], input=json.dumps(payload), capture_output=True, text=True,
        cwd=ROOT, timeout=60, check=True,
    )
    result: dict[str, str] = json.loads(out.stdout)
    return result


def test_npm_siwe_and_ethers_client_gets_a_verifiable_token(live_server: LiveServer) -> None:
    acct = Account.create()
    nonce = httpx.post(live_server.url + "/siwe/nonce", json={"client_id": "dapp"}).json()["nonce"]
    signed = js_sign({
        "privateKey": "0x" + bytes(acct.key).hex(),
        "domain": "localhost:3000",
        "uri": "http://localhost:3000/app",
        "nonce": nonce,
        "chainId": 31337,
        "statement": "Sign in to the trading venue.",
        "resources": ["https://localhost:3000/terms"],
    })
    assert signed["address"] == acct.address
    r = httpx.post(live_server.url + "/siwe/verify", json={
        "client_id": "dapp", "message": signed["message"], "signature": signed["signature"],
        "scope": "account:read trade:write",
    })
    assert r.status_code == 200, r.text
    token = r.json()["access_token"]
    key = jwt.PyJWKClient(live_server.url + "/.well-known/jwks.json").get_signing_key_from_jwt(token)
    claims = jwt.decode(
        token, key, algorithms=["ES256"], audience="trading-api", issuer=live_server.url,
        options={"require": ["exp", "iat", "iss", "aud", "sub", "jti"]},
    )
    assert jwt.get_unverified_header(token)["typ"] == "at+jwt"
    assert claims["sub"] == f"did:pkh:eip155:31337:{acct.address}"
    assert claims["scope"] == "account:read trade:write"
    # the JS client's exact text round-trips through our parser
    from did_auth.core.siwe import SiweMessage

    assert SiweMessage.from_text(signed["message"]).to_text() == signed["message"]
