"""End to end in headless Chromium: the demo dApp served by a real `did-auth serve` (no
config), an injected EIP-1193 wallet backed by an ethers Wallet, and a real
examples/trading_api.py process. Screenshots go to test-artifacts/ (git-ignored).

Needs Debian's Chromium at /usr/bin/chromium (scripts/test.sh installs it) and the npm
packages (playwright-core, ethers) in node_modules/.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.edge.web.procs import spawn
from tests.fixtures.redis_server import free_port
from tests.fixtures.servers import start_server, stop_server

ROOT = Path(__file__).resolve().parents[3]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")


@pytest.fixture(scope="module")
def issuer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = start_server({})  # `did-auth serve --port P`: embedded defaults
    yield server.url
    stop_server(server)


@pytest.fixture(scope="module")
def dapp_port() -> int:
    """The port of the other-origin dApp page of the `dpop` scenario (CORS at the API)."""
    return free_port()


@pytest.fixture(scope="module")
def trading_api(
    issuer: str, dapp_port: int, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    port = free_port()
    log = tmp_path_factory.mktemp("trading-api") / "api.log"
    cmd = [
        sys.executable,
        "examples/trading_api.py",
        "--cors-origin",
        issuer,  # the demo's origin, allowed by CORS
        "--cors-origin",
        f"http://127.0.0.1:{dapp_port}",
        "--issuer",
        issuer,
        "--audience",
        "trading-api",
        "--port",
        str(port),
    ]
    running = spawn(cmd, f"http://127.0.0.1:{port}", log)
    yield running.url
    running.stop()


def run_scenario(
    name: str, issuer: str, api: str = "http://127.0.0.1:9", dapp_port: int = 0
) -> dict[str, Any]:
    assert Path(CHROMIUM).exists(), (
        f"{CHROMIUM} is missing: `apt-get install -y chromium` (scripts/test.sh does it)"
    )
    config = {
        "issuer": issuer,
        "api": api,
        "privateKey": "0x" + secrets.token_hex(32),
        "artifacts": str(ARTIFACTS),
        "dappPort": dapp_port,
    }
    env = {**os.environ, "E2E": json.dumps(config), "CHROMIUM": CHROMIUM}
    done = subprocess.run(
        ["node", "tests/edge/web/browser_e2e.mjs", name],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    assert lines, f"no result from the browser run:\n{done.stdout}\n{done.stderr}"
    result: dict[str, Any] = json.loads(lines[-1])
    assert done.returncode == 0 and result["ok"], f"{result.get('error')}\n{done.stderr}"
    return result


def test_demo_dapp_signs_in_calls_account_orders_and_revokes(issuer: str, trading_api: str) -> None:
    result = run_scenario("hosted", issuer, trading_api)
    account = result["account"]
    assert account["sub"].startswith("did:pkh:eip155:31337:0x")
    assert account["client_id"] == "demo"
    assert set(account["scopes"]) == {"account:read", "trade:write"}
    assert result["orderStatus"] == 201
    assert "did-auth now refuses its refresh token" in result["status"]
    message = result["message"]
    assert message.startswith(issuer.removeprefix("http://") + " wants you to sign in")
    assert f"URI: {issuer}/signin" in message
    assert "You allow it to see your account balances and open orders" in message
    assert (ARTIFACTS / "signin-page.png").stat().st_size > 10_000
    assert (ARTIFACTS / "demo-signed-in.png").stat().st_size > 10_000


def test_demo_dapp_as_oidc_client_code_flow_with_pkce(issuer: str, trading_api: str) -> None:
    result = run_scenario("oidc", issuer, trading_api)
    assert result["accountStatus"] == 200
    assert f"URI: {issuer}/authorize" in result["message"]
    assert "\nRequest ID: " in result["message"]
    assert (ARTIFACTS / "authorize-page.png").exists()


def test_other_origin_dapp_signs_in_through_popup(issuer: str) -> None:
    result = run_scenario("popup", issuer)
    assert result["sub"].startswith("did:pkh:eip155:31337:0x")


def test_other_origin_dapp_uses_the_package_with_a_non_extractable_dpop_key(
    issuer: str, trading_api: str, dapp_port: int
) -> None:
    """Chromium's WebCrypto: the DPoP private key cannot be exported; the tokens are bound to
    it (cnf.jkt), the trading API accepts its proofs and refuses the same token as Bearer; the
    key kept in IndexedDB carries the session over a reload."""
    result = run_scenario("dpop", issuer, trading_api, dapp_port)
    assert result["extractable"] is False
    assert result["exportError"] == "InvalidAccessError"
    assert result["tokenType"] == "DPoP"
    assert result["jkt"] == result["thumbprint"]
    assert (result["account"], result["order"], result["again"]) == (200, 201, 200)
    assert result["rotated"] is True
    assert result["bearer"] == 401
    assert result["sameModule"] is True  # /static/did-auth-client.js is the same module
    assert result["sub"].startswith("did:pkh:eip155:31337:0x")
    # After a reload the key comes back from IndexedDB, still non-extractable, and the
    # DPoP-bound session goes on with it.
    resumed = result["resumed"]
    assert resumed["extractable"] is False
    assert resumed["thumbprint"] == result["thumbprint"]
    assert resumed["account"] == 200


def test_user_rejects_signature_clear_message_no_token(issuer: str) -> None:
    result = run_scenario("rejected", issuer)
    assert "You declined the request in your wallet" in result["error"]
    assert "not signed in" in result["error"]


def test_wallet_missing_clear_message(issuer: str) -> None:
    result = run_scenario("missing", issuer)
    assert "No Ethereum wallet was found" in result["error"]


def test_wrong_chain_clear_message(issuer: str) -> None:
    result = run_scenario("wrong_chain", issuer)
    assert "Switch the network in your wallet" in result["error"]
