"""End to end: `python examples/trading_api.py ...` as a real process, with a loopback HTTP
server playing the issuer (JWKS and revocation feed)."""

from __future__ import annotations

import base64
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from did_auth.core.clock import SystemClock
from did_auth.verifier import make_dpop_proof

from .conftest import ROOT, FakeIssuer, parse_challenges, thumbprint_of


class IssuerServer:
    def __init__(self) -> None:
        self.issuer = FakeIssuer(SystemClock())  # type: ignore[arg-type]
        self.revoked: list[dict[str, Any]] = []
        self.requests: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.requests.append(self.path)
                if self.path == "/.well-known/jwks.json":
                    body: Any = outer.issuer.jwks()
                elif self.path.startswith("/revocations"):
                    since = int(self.path.partition("since=")[2] or 0)
                    body = {"revoked": outer.revoked[since:], "cursor": str(len(outer.revoked))}
                else:
                    self.send_error(404)
                    return
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def mint(self, **claims: Any) -> str:
        return self.issuer.mint(iss=self.url, **claims)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def live() -> Iterator[tuple[IssuerServer, str]]:
    issuer = IssuerServer()
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "examples" / "trading_api.py"),
            "--issuer",
            issuer.url,
            "--audience",
            "trading-api",
            "--port",
            str(port),
            "--follow-revocations",
            "--revocation-interval",
            "0.1",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, process.stdout.read().decode()  # type: ignore[union-attr]
            try:
                if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "trading API did not start"
            time.sleep(0.1)
        yield issuer, base
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()
        issuer.close()


def test_live_trading_api(live: tuple[IssuerServer, str]):
    issuer, base = live
    with httpx.Client(base_url=base, timeout=10) as client:
        token = issuer.mint()
        response = client.get("/account", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200, response.text
        assert "/.well-known/jwks.json" in issuer.requests

        response = client.get("/account")
        assert response.status_code == 401
        assert parse_challenges(response.headers["www-authenticate"])["Bearer"] == {
            "realm": "trading-api"
        }

        order = {"symbol": "ETH-USDC", "side": "sell", "type": "market", "quantity": "0.25"}
        response = client.post("/orders", json=order, headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 201, response.text

        response = client.post(
            "/withdrawals",
            json={"asset": "USDC", "amount": "1", "address": "0xabc"},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert response.status_code == 403
        assert parse_challenges(response.headers["www-authenticate"])["Bearer"]["scope"] == (
            "wallet:withdraw"
        )

        # DPoP-bound token with a proof for the real URL the server sees.
        key = ec.generate_private_key(ec.SECP256R1())
        bound = issuer.mint(cnf={"jkt": thumbprint_of(key)})
        proof = make_dpop_proof(key, htm="GET", htu=f"{base}/account", access_token=bound)
        response = client.get("/account", headers={"Authorization": f"DPoP {bound}", "DPoP": proof})
        assert response.status_code == 200, response.text
        response = client.get("/account", headers={"Authorization": f"DPoP {bound}", "DPoP": proof})
        assert response.status_code == 401
        challenge = parse_challenges(response.headers["www-authenticate"])["DPoP"]
        assert challenge["error"] == "invalid_dpop_proof"

        # Revocation through the feed reaches the API within a few polls.
        claims = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "==").decode())
        issuer.revoked.append({"sid": claims["sid"], "exp": claims["exp"]})
        deadline = time.monotonic() + 10
        while True:
            response = client.get("/account", headers={"Authorization": f"Bearer {token}"})
            if response.status_code == 401:
                break
            assert time.monotonic() < deadline, "revocation never applied"
            time.sleep(0.1)
        challenge = parse_challenges(response.headers["www-authenticate"])["Bearer"]
        assert challenge["error"] == "invalid_token"
        assert "revoked" in challenge["error_description"]
