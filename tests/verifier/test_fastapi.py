"""`did_auth.verifier.fastapi` beyond the example app: module-level `require_scopes`,
`public_url`, DPoP nonces, fail-closed 503s, offloading."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi import Depends, FastAPI

from did_auth.core.clock import FixedClock
from did_auth.verifier import (
    FeedFollower,
    JWKSCache,
    TokenVerifier,
    VerifiedToken,
    make_dpop_proof,
)
from did_auth.verifier.fastapi import TokenGuard, require_scopes

from .conftest import AUDIENCE, ISSUER, FakeIssuer, parse_challenges, thumbprint_of


def build(guard: TokenGuard | None, **kw: Any) -> FastAPI:
    app = FastAPI()
    if guard is not None:
        guard.install(app)

    @app.get("/x")
    async def x(token: VerifiedToken = Depends(require_scopes("account:read", **kw))) -> dict:
        return {"sub": token.sub, "type": token.token_type}

    return app


@pytest.fixture
async def client_for() -> AsyncIterator[Any]:
    clients: list[httpx.AsyncClient] = []

    def make(app: FastAPI, base: str = "http://internal:8080") -> httpx.AsyncClient:
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, raise_app_exceptions=False), base_url=base
        )
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()


async def test_module_level_require_scopes(client_for, verifier: TokenVerifier, issuer: FakeIssuer):
    client = client_for(build(TokenGuard(verifier)))
    ok = await client.get("/x", headers={"Authorization": f"Bearer {issuer.mint()}"})
    assert ok.status_code == 200 and ok.json()["type"] == "Bearer"
    denied = await client.get(
        "/x", headers={"Authorization": f"Bearer {issuer.mint(scope='trade:write')}"}
    )
    assert denied.status_code == 403
    assert denied.json() == {
        "error": "insufficient_scope",
        "error_description": "scope 'account:read' required",
    }


async def test_without_install_fails_closed(client_for, issuer: FakeIssuer):
    client = client_for(build(None))
    response = await client.get("/x", headers={"Authorization": f"Bearer {issuer.mint()}"})
    assert response.status_code == 500


async def test_step_up_via_module_level_dependency(
    client_for, verifier: TokenVerifier, issuer: FakeIssuer
):
    client = client_for(build(TokenGuard(verifier, step_up_max_age=120), step_up=True))
    response = await client.get("/x", headers={"Authorization": f"Bearer {issuer.mint()}"})
    assert response.status_code == 401
    challenge = parse_challenges(response.headers["www-authenticate"])["Bearer"]
    assert challenge["error"] == "insufficient_user_authentication"
    assert challenge["max_age"] == "120"


async def test_public_url_is_used_for_htu(
    client_for, verifier: TokenVerifier, issuer: FakeIssuer, clock: FixedClock
):
    key = ec.generate_private_key(ec.SECP256R1())
    token = issuer.mint(cnf={"jkt": thumbprint_of(key)})
    client = client_for(build(TokenGuard(verifier, public_url="https://api.example/")))
    internal = make_dpop_proof(
        key, htm="GET", htu="http://internal:8080/x", access_token=token, clock=clock
    )
    response = await client.get("/x", headers={"Authorization": f"DPoP {token}", "DPoP": internal})
    assert response.status_code == 401
    public = make_dpop_proof(
        key, htm="GET", htu="https://api.example/x", access_token=token, clock=clock
    )
    response = await client.get("/x", headers={"Authorization": f"DPoP {token}", "DPoP": public})
    assert response.status_code == 200, response.text
    assert response.json()["type"] == "DPoP"


async def test_dpop_nonce_challenge(
    client_for, verifier: TokenVerifier, issuer: FakeIssuer, clock: FixedClock
):
    key = ec.generate_private_key(ec.SECP256R1())
    token = issuer.mint(cnf={"jkt": thumbprint_of(key)})
    client = client_for(build(TokenGuard(verifier, dpop_nonce="nonce-123")))
    url = "http://internal:8080/x"
    proof = make_dpop_proof(key, htm="GET", htu=url, access_token=token, clock=clock)
    response = await client.get("/x", headers={"Authorization": f"DPoP {token}", "DPoP": proof})
    assert response.status_code == 401
    assert response.headers["dpop-nonce"] == "nonce-123"
    challenge = parse_challenges(response.headers["www-authenticate"])["DPoP"]
    assert challenge["error"] == "use_dpop_nonce"
    proof = make_dpop_proof(
        key, htm="GET", htu=url, access_token=token, nonce="nonce-123", clock=clock
    )
    response = await client.get("/x", headers={"Authorization": f"DPoP {token}", "DPoP": proof})
    assert response.status_code == 200


async def test_stale_revocation_feed_is_503(
    client_for, jwks: JWKSCache, issuer: FakeIssuer, clock: FixedClock
):
    feed = FeedFollower(
        ISSUER, clock=clock, fetch=lambda url: {"revoked": [], "cursor": "1"}, max_lag=5
    )
    verifier = TokenVerifier(ISSUER, AUDIENCE, jwks, clock=clock, revocations=feed)
    client = client_for(build(TokenGuard(verifier)))
    headers = {"Authorization": f"Bearer {issuer.mint()}"}
    response = await client.get("/x", headers=headers)
    assert response.status_code == 503  # never polled yet: fail closed
    assert response.json()["error"] == "temporarily_unavailable"
    assert feed.poll_once()
    assert (await client.get("/x", headers=headers)).status_code == 200
    clock.advance(6)
    assert (await client.get("/x", headers=headers)).status_code == 503


async def test_offload(client_for, verifier: TokenVerifier, issuer: FakeIssuer):
    client = client_for(build(TokenGuard(verifier, offload=True)))
    response = await client.get("/x", headers={"Authorization": f"Bearer {issuer.mint()}"})
    assert response.status_code == 200
