"""DPoP `htu` at the verifier comes from the API's configured public URL, never from headers.

Attack (RFC 9449 §4.3 ¶9, §11.1): a DPoP proof is bound to one URL so that a proof captured
on, or signed for, another site is useless here. The verifier used to rebuild "the URL of
this request" from the `Host` header (and, behind uvicorn's default proxy handling, from
`X-Forwarded-Proto`), which the client chooses. A proof made for
`https://evil.example/orders` (e.g. by a phishing site the victim's wallet app talks to)
was therefore accepted by the trading API when replayed with `Host: evil.example`.
Now the origin is `public_url` (`--public-url` of the example, `TokenGuard(public_url=...)`)
or, when none is configured, the address the server socket is bound to.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi import Depends, FastAPI

from did_auth.verifier import JWKSCache, TokenVerifier, VerifiedToken, make_dpop_proof
from did_auth.verifier.fastapi import TokenGuard
from tests import siwe_text
from tests.edge.web.procs import ROOT, Proc, spawn
from tests.fixtures.redis_server import free_port
from tests.fixtures.servers import LiveServer

EVIL = "https://evil.example"
ATTACK_HEADERS = {
    "Host": "evil.example",
    "X-Forwarded-Host": "evil.example",
    "X-Forwarded-Proto": "https",
    "Forwarded": "host=evil.example;proto=https",
}
ORDER = {"symbol": "ETH-USDC", "side": "buy", "type": "limit", "quantity": "1", "price": "2000"}


def _dpop_login(server: LiveServer, key: ec.EllipticCurvePrivateKey) -> str:
    address, wallet = siwe_text.new_account()
    nonce = httpx.post(server.url + "/siwe/nonce", json={"client_id": "dapp"}).json()["nonce"]
    text = siwe_text.message(address, nonce)
    proof = make_dpop_proof(key, htm="POST", htu=server.url + "/siwe/verify")
    r = httpx.post(
        server.url + "/siwe/verify",
        json={
            "client_id": "dapp", "message": text, "signature": siwe_text.sign(text, wallet),
            "scope": "trade:write",
        },
        headers={"DPoP": proof},
    )
    assert r.status_code == 200, r.text
    assert r.json()["token_type"] == "DPoP"
    return str(r.json()["access_token"])


@pytest.fixture(params=["default", "configured"])
def trading_api(request: pytest.FixtureRequest, live_server: LiveServer) -> Iterator[tuple[Proc, str]]:
    """The example API and the public URL clients must name in their proofs."""
    port = free_port()
    cmd = [
        sys.executable, str(ROOT / "examples" / "trading_api.py"),
        "--issuer", live_server.url, "--audience", "trading-api", "--port", str(port),
    ]
    public = f"http://127.0.0.1:{port}"  # the documented default
    if request.param == "configured":
        public = "https://api.trading.example"
        cmd += ["--public-url", public + "/"]
    log = Path(tempfile.mkdtemp(prefix="trading-htu-")) / "api.log"
    api = spawn(cmd, f"http://127.0.0.1:{port}", log)
    yield api, public
    api.stop()


def test_proof_for_another_site_is_refused_whatever_the_host_header(
    live_server: LiveServer, trading_api: tuple[Proc, str]
) -> None:
    api, public = trading_api
    key = ec.generate_private_key(ec.SECP256R1())
    token = _dpop_login(live_server, key)

    def order(htu: str, headers: dict[str, str] | None = None) -> httpx.Response:
        proof = make_dpop_proof(key, htm="POST", htu=htu, access_token=token)
        return httpx.post(
            api.url + "/orders", json=ORDER,
            headers={"Authorization": f"DPoP {token}", "DPoP": proof, **(headers or {})},
        )

    # The attack: a proof made for evil.example, replayed with headers naming evil.example.
    r = order(EVIL + "/orders", ATTACK_HEADERS)
    assert r.status_code == 401, r.text
    assert r.json()["error"] == "invalid_dpop_proof"
    challenge = r.headers["www-authenticate"]
    assert challenge.startswith("DPoP ") and 'error="invalid_dpop_proof"' in challenge
    assert "htu" in r.json()["error_description"]
    # Nor does the Host header alone, or a proof naming the header-derived local URL.
    assert order(EVIL + "/orders", {"Host": "evil.example"}).status_code == 401
    if public.startswith("https://api.trading.example"):
        assert order(api.url + "/orders").status_code == 401
    # The proof for the configured public URL passes, whatever Host says.
    r = order(public + "/orders")
    assert r.status_code == 201, r.text
    assert order(public + "/orders", ATTACK_HEADERS).status_code == 201


async def test_token_guard_without_public_url_uses_the_socket_not_the_host_header(
    live_server: LiveServer,
) -> None:
    verifier = TokenVerifier(
        live_server.url, "trading-api", JWKSCache.for_issuer(live_server.url)
    )
    guard = TokenGuard(verifier)
    app = FastAPI()
    guard.install(app)

    @app.post("/orders")
    async def orders(token: VerifiedToken = Depends(guard.require_scopes("trade:write"))) -> dict:  # type: ignore[type-arg]
        return {"sub": token.sub}

    key = ec.generate_private_key(ec.SECP256R1())
    token = _dpop_login(live_server, key)
    transport = httpx.ASGITransport(app=app)
    # The ASGI server address (scope["server"]) is api.internal:8080.
    async with httpx.AsyncClient(transport=transport, base_url="http://api.internal:8080") as c:

        async def order(htu: str, headers: dict[str, str]) -> httpx.Response:
            proof = make_dpop_proof(key, htm="POST", htu=htu, access_token=token)
            return await c.post(
                "/orders", headers={"Authorization": f"DPoP {token}", "DPoP": proof, **headers}
            )

        r = await order(EVIL + "/orders", ATTACK_HEADERS)
        assert r.status_code == 401 and r.json()["error"] == "invalid_dpop_proof", r.text
        r = await order("http://api.internal:8080/orders", ATTACK_HEADERS)
        assert r.status_code == 200, r.text
    verifier.close()

    with pytest.raises(ValueError):
        TokenGuard(verifier, public_url="https://api.example/?x=1")
    with pytest.raises(ValueError):
        TokenGuard(verifier, public_url="ftp://api.example")
