"""Shared pieces of the third-party client conformance tests (openid-client, oauth4webapi,
jose, authlib): a did-auth server with one OAuth client per client-authentication method,
the wallet step of the code flow (done as the sign-in page does it), and a driver for the
Node relying-party scripts.

A Node RP script speaks JSON lines on stdin/stdout: it reads its settings, prints
`{"authorize": url}`, reads `{"redirect": url}` (the wallet signed in and the server
redirected), then finishes the flow with its own library and prints `{"result": {...}}`
(or `{"error": {...}}` and exits 1). Every step has a deadline, so a stuck library can
never hang the suite.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import queue
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from tests import siwe_text
from tests.edge.web.test_oidc import rp_client, wallet_sign_in_sync
from tests.fixtures.servers import LiveServer, config_dict, start_server, stop_server

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
CALLBACK = "http://127.0.0.1:8123/callback"
AUDIENCE = "trading-api"
# RFC 6749 §2.3.1: client_secret_basic form-urlencodes id and secret before Base64, so a
# space travels as `+` and a literal `+` as `%2B`; `%`, `:` and `/` test the rest.
BASIC_SECRET = "correct horse+battery staple %41:/="
POST_SECRET = "post secret+with spaces"
# Spaces only: the same bytes whether or not a client form-urlencodes (authlib does not).
SPACES_SECRET = "correct horse battery staple"


def secret_hash(secret: str) -> str:
    return "sha256:" + hashlib.sha256(secret.encode()).hexdigest()


def _b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def new_ec_jwk(kid: str) -> tuple[dict[str, str], dict[str, str]]:
    """A P-256 key pair as (private JWK, public JWK) for private_key_jwt (RFC 7523)."""
    key = ec.generate_private_key(ec.SECP256R1())
    nums = key.private_numbers()
    pub = {
        "kty": "EC",
        "crv": "P-256",
        "x": _b64u(nums.public_numbers.x.to_bytes(32, "big")),
        "y": _b64u(nums.public_numbers.y.to_bytes(32, "big")),
        "kid": kid,
        "alg": "ES256",
        "use": "sig",
    }
    return {**pub, "d": _b64u(nums.private_value.to_bytes(32, "big"))}, pub


@dataclass
class OAuthServer:
    """A live did-auth server and the clients registered on it."""

    url: str
    server: LiveServer
    client_keys: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def meta(self) -> dict[str, Any]:
        meta: dict[str, Any] = httpx.get(f"{self.url}/.well-known/openid-configuration").json()
        return meta


def public_clients() -> list[dict[str, Any]]:
    """Clients that authenticate with `none` (PKCE only), one of them DPoP-only."""
    return [
        rp_client("rp-public", redirect_uris=[CALLBACK]),
        rp_client("rp-dpop", redirect_uris=[CALLBACK], require_dpop=True),
    ]


def confidential_clients(jwt_public: dict[str, str]) -> list[dict[str, Any]]:
    """One confidential client per RFC 6749 §2.3 / RFC 7523 authentication method."""
    return [
        rp_client(
            "rp-basic",
            redirect_uris=[CALLBACK],
            client_secret_hash=secret_hash(BASIC_SECRET),
            token_endpoint_auth_method="client_secret_basic",
        ),
        rp_client(
            "rp-basic-spaces",
            redirect_uris=[CALLBACK],
            client_secret_hash=secret_hash(SPACES_SECRET),
        ),
        rp_client(
            "rp-post",
            redirect_uris=[CALLBACK],
            client_secret_hash=secret_hash(POST_SECRET),
            token_endpoint_auth_method="client_secret_post",
        ),
        rp_client(
            "rp-jwt",
            redirect_uris=[CALLBACK],
            token_endpoint_auth_method="private_key_jwt",
            jwks={"keys": [jwt_public]},
        ),
        # A confidential client that also binds its tokens to a DPoP key (RFC 9449).
        rp_client(
            "rp-jwt-dpop",
            redirect_uris=[CALLBACK],
            token_endpoint_auth_method="private_key_jwt",
            jwks={"keys": [jwt_public]},
            require_dpop=True,
        ),
    ]


@pytest.fixture(scope="session")
def public_server() -> Iterator[OAuthServer]:
    """did-auth (memory store, one worker) with the public clients."""
    server = start_server(config_dict(clients=public_clients(), access_token_ttl=300))
    yield OAuthServer(server.url, server)
    stop_server(server)


@pytest.fixture(scope="session")
def confidential_server() -> Iterator[OAuthServer]:
    """did-auth (memory store, one worker) with one confidential client per method."""
    jwt_private, jwt_public = new_ec_jwk("rp-jwt-key-1")
    server = start_server(
        config_dict(clients=confidential_clients(jwt_public), access_token_ttl=300)
    )
    yield OAuthServer(server.url, server, {"rp-jwt": jwt_private, "rp-jwt-dpop": jwt_private})
    stop_server(server)


def sign_in(authorize_url: str, base: str) -> str:
    """The user's part: open the authorization URL, sign the SIWE message with a fresh
    wallet and return where the server redirects the browser (with code, state, iss)."""
    address, key = siwe_text.new_account()
    with httpx.Client(base_url=base, timeout=30) as http:
        return wallet_sign_in_sync(http, authorize_url, key, address)


def unverified_claims(jwt: str) -> dict[str, Any]:
    payload = jwt.split(".")[1]
    claims: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return claims


def unverified_header(jwt: str) -> dict[str, Any]:
    head = jwt.split(".")[0]
    header: dict[str, Any] = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
    return header


class NodeRP:
    """Runs one Node relying-party script from the repository's node_modules."""

    STEP_TIMEOUT = 45.0

    def __init__(self, script: str, settings: dict[str, Any]) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("NODE_OPTIONS")}
        self.proc = subprocess.Popen(
            ["node", str(HERE / script)],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()
        self.send(settings)

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def send(self, obj: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(obj) + "\n")
        self.proc.stdin.flush()

    def read(self) -> dict[str, Any]:
        deadline = time.monotonic() + self.STEP_TIMEOUT
        while True:
            try:
                line = self._lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                self.proc.kill()
                raise AssertionError(f"node RP timed out; stderr:\n{self.stderr()}") from None
            if line is None:
                self.proc.wait(10)
                raise AssertionError(
                    f"node RP exited {self.proc.returncode} early; stderr:\n{self.stderr()}"
                )
            if line.strip():
                msg: dict[str, Any] = json.loads(line)
                return msg

    def stderr(self) -> str:
        if self.proc.poll() is None:
            self.proc.kill()
        assert self.proc.stderr is not None
        return self.proc.stderr.read()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)


def run_code_flow(script: str, server: OAuthServer, **settings: Any) -> dict[str, Any]:
    """Run a Node RP through the whole code flow; the wallet step is done here. Returns the
    script's result or fails the test with the library's error."""
    rp = NodeRP(script, {"issuer": server.url, "redirect_uri": CALLBACK, **settings})
    try:
        first = rp.read()
        if "error" in first:
            raise AssertionError(f"{script}: {json.dumps(first['error'], indent=1)}")
        redirect = sign_in(first["authorize"], server.url)
        rp.send({"redirect": redirect})
        done = rp.read()
        if "error" in done:
            raise AssertionError(f"{script}: {json.dumps(done['error'], indent=1)}")
        result: dict[str, Any] = done["result"]
        return result
    finally:
        rp.close()


def run_node(script: str, payload: dict[str, Any], timeout: float = 60) -> dict[str, Any]:
    """Run a one-shot Node script (one JSON line in, one out) from the repo's node_modules."""
    out = subprocess.run(
        ["node", str(HERE / script)], input=json.dumps(payload) + "\n", capture_output=True,
        text=True, cwd=ROOT, timeout=timeout, check=False,
    )
    lines = [line for line in out.stdout.splitlines() if line.strip()]
    assert out.returncode == 0 and lines, f"{script} exited {out.returncode}:\n{out.stdout}\n{out.stderr}"
    result: dict[str, Any] = json.loads(lines[-1])
    return result
