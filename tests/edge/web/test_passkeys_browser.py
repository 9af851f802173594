"""Passkeys end to end in headless Chromium with the DevTools WebAuthn virtual authenticator
(CTAP2, internal transport, user verification): a real `did-auth serve` (embedded
defaults), the hosted page opened on http://localhost:PORT (WebAuthn refuses an IP address
as RP id; the default RP id of a loopback issuer is `localhost`), an injected wallet backed
by an ethers Wallet, and a real examples/trading_api.py process.

1. After a fresh sign-in for the account (audience = the issuer) the page registers a
   passkey: navigator.credentials.create answered by the virtual authenticator, verified
   and stored by the server, listed on the page; a second authenticator is added only
   with an assertion of the first (the account's current factor), then a TOTP; a sign-in
   asking for a step-up scope (wallet:withdraw) takes the TOTP code typed on the page.
2. A withdrawal: the page shows it in plain words before the wallet is asked anything, the
   wallet signs the EIP-712 typed data (eth_signTypedData_v4), the virtual authenticator
   answers navigator.credentials.get for a challenge bound to the transaction nonce, and the
   trading API accepts exactly that withdrawal once (another amount is refused, a second use
   is refused).
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from eth_account import Account

from tests.edge.web.procs import spawn
from tests.fixtures.redis_server import free_port
from tests.fixtures.servers import start_server, stop_server

ROOT = Path(__file__).resolve().parents[3]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")


@pytest.fixture(scope="module")
def issuer() -> Iterator[str]:
    server = start_server({})  # embedded defaults: issuer http://127.0.0.1:PORT
    yield server.url
    stop_server(server)


@pytest.fixture(scope="module")
def trading_api(issuer: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    log = tmp_path_factory.mktemp("trading-api") / "api.log"
    cmd = [sys.executable, "examples/trading_api.py", "--issuer", issuer,
           "--audience", "trading-api", "--port", str(port),
           # the demo page's origin (the page calls the API from the browser)
           "--cors-origin", issuer.replace("127.0.0.1", "localhost")]
    running = spawn(cmd, f"http://127.0.0.1:{port}", log)
    yield running.url
    running.stop()


def run(scenario: str, issuer: str, **extra: Any) -> dict[str, Any]:
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing (scripts/test.sh installs it)"
    config = {
        "issuer": issuer,
        "page": issuer.replace("127.0.0.1", "localhost"),
        "privateKey": "0x" + secrets.token_hex(32),
        "artifacts": str(ARTIFACTS),
        "chromium": CHROMIUM,
        **extra,
    }
    done = subprocess.run(
        ["node", "tests/edge/web/passkeys_e2e.mjs", scenario], cwd=ROOT,
        env={**os.environ, "E2E": json.dumps(config)}, capture_output=True, text=True,
        timeout=240,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    assert lines, f"no result from the browser run:\n{done.stdout}\n{done.stderr}"
    result: dict[str, Any] = json.loads(lines[-1])
    assert done.returncode == 0 and result["ok"], f"{result.get('error')}\n{done.stderr}"
    return result


def test_hosted_page_registers_a_passkey_after_a_fresh_login(issuer: str) -> None:
    result = run("register", issuer)
    assert result["credentials"] == 1 and result["resident"] == [True]
    # Chromium's virtual authenticator makes device-bound credentials (BE = 0): hwk.
    assert all("kept on this device" in item for item in result["listed"])
    # A second passkey (another authenticator) was added only with the first one's
    # assertion: the account's current factor.
    assert len(result["listed"]) == 2 and result["secondCredentials"] == 1
    assert result["confirmedWithFirst"] is True
    # Then a TOTP (authenticator app), confirmed with a code, its start with a passkey.
    assert result["totpWithPasskey"] is True
    # A step-up scope at sign-in is no dead end: the hosted page asks for the code.
    assert result["codeShown"] is True
    assert "wallet:withdraw" in result["stepUpScope"].split()
    assert "otp" in result["stepUpAmr"]
    assert (ARTIFACTS / "passkey-registered.png").stat().st_size > 10_000


def test_withdrawal_approved_by_wallet_and_passkey_is_accepted_once(
    issuer: str, trading_api: str
) -> None:
    destination = Account.create().address
    withdrawal = {"asset": "ETH", "amount": "0.25", "destination": destination,
                  "network": "ethereum", "audience": "trading-api"}
    result = run("withdraw", issuer, withdrawal=withdrawal)
    # Shown in plain words before the wallet was asked anything (the script checks the
    # order); the words name exactly what is signed.
    words = result["words"]
    assert "Withdraw 0.25 ETH to " + destination in words and "ethereum" in words
    (typed,) = result["typed"]
    assert typed["primaryType"] == "Withdrawal"
    assert typed["domain"] == {"name": "did-auth", "version": "1", "chainId": 31337}
    message = typed["message"]
    assert {k: message[k] for k in withdrawal} == withdrawal
    # The virtual authenticator signed once more: its counter went up.
    before, after = result["signCount"]
    assert after > before
    token = result["token"]
    claims = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
    assert claims["authorization_details"] == [{"type": "withdrawal", **withdrawal}]
    assert "hwk" in claims["amr"] and claims["scope"] == "wallet:withdraw"
    assert claims["exp"] - claims["iat"] <= 60

    auth = {"Authorization": f"Bearer {token}"}
    body = {"asset": "ETH", "amount": "0.25", "address": destination, "network": "ethereum"}
    other = httpx.post(f"{trading_api}/withdrawals", headers=auth,
                       json={**body, "amount": "25"})
    assert other.status_code == 403, other.text  # another amount: insufficient_scope
    ok = httpx.post(f"{trading_api}/withdrawals", headers=auth, json=body)
    assert ok.status_code == 202, ok.text
    assert {k: ok.json()[k] for k in body} == body
    again = httpx.post(f"{trading_api}/withdrawals", headers=auth, json=body)
    assert again.status_code == 401, again.text  # a second use
    assert (ARTIFACTS / "withdrawal-review.png").stat().st_size > 10_000


def test_demo_dapp_enrols_a_passkey_and_sends_the_approved_withdrawal(
    issuer: str, trading_api: str
) -> None:
    withdrawal = {"asset": "USDC", "amount": "12.5", "destination": Account.create().address,
                  "network": "base", "audience": "trading-api"}
    result = run("demo", issuer, withdrawal=withdrawal, api=trading_api)
    assert "Withdraw 12.5 USDC to " in result["words"]
    assert result["api"].startswith("Trading API answered 202"), result["api"]
    claims = json.loads(base64.urlsafe_b64decode(result["token"].split(".")[1] + "=="))
    assert claims["authorization_details"] == [{"type": "withdrawal", **withdrawal}]
