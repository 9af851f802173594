"""Attack: a stolen token drains the account. A withdrawal must need a token that did-auth
issued for exactly that withdrawal, approved by the account's EIP-712 signature and a
second factor, and the API must take it once, for exactly those values.

Live: a `did-auth serve --workers 2` on Redis and the example trading API
(`examples/trading_api.py`, used tokens remembered in Redis), talking HTTP. Each attack is
performed; the honest request passes once, so every refusal is meaningful.
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from eth_account import Account

from did_auth.verifier import make_dpop_proof
from tests.edge.web.procs import ROOT, Proc, spawn
from tests.fixtures.redis_server import RedisServer, free_port
from tests.fixtures.servers import LiveServer
from tests.waits import wait_until
from tests.withdrawals import DESTINATION, Session, details, eoa_typed_signer, login

LEEWAY = 1  # the API's exp leeway (seconds), so that "after 60 s" is seconds here
REQUEST = {"asset": "USDC", "amount": "250.00", "address": DESTINATION, "network": "ethereum"}


@pytest.fixture(scope="module")
def trading_api(live_server: LiveServer, redis_server: RedisServer) -> Iterator[Proc]:
    port = free_port()
    cmd = [
        sys.executable, str(ROOT / "examples" / "trading_api.py"),
        "--issuer", live_server.url, "--audience", "trading-api", "--port", str(port),
        "--leeway", str(LEEWAY), "--replay-redis-url", redis_server.own_db(7),
    ]
    log = Path(tempfile.mkdtemp(prefix="trading-wd-")) / "api.log"
    api = spawn(cmd, f"http://127.0.0.1:{port}", log)
    yield api
    api.stop()


@pytest.fixture
async def did_auth(live_server: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=live_server.url, timeout=20) as client:
        yield client


async def enrolled(client: httpx.AsyncClient, **kw: Any) -> Session:
    s = await login(client, **kw)
    await s.enrol_otp()
    return s


async def approved(client: httpx.AsyncClient, **kw: Any) -> tuple[Session, dict[str, Any]]:
    """A fresh account's withdrawal token for `details(**kw)` (one approval per account:
    its TOTP codes are single use per time step)."""
    dpop = bool(kw.pop("dpop", False))
    ttl = int(kw.pop("ttl", 120))
    s = await enrolled(client, dpop=dpop)
    r = await s.authorize(await s.approval_body(details(**kw), ttl=ttl))
    assert r.status_code == 200, r.text
    return s, r.json()


def withdraw(
    api: Proc, token: str, body: dict[str, str] | None = None, *,
    key: ec.EllipticCurvePrivateKey | None = None, scheme: str | None = None,
) -> httpx.Response:
    headers = {"Authorization": f"{scheme or ('DPoP' if key else 'Bearer')} {token}"}
    if key is not None:
        headers["DPoP"] = make_dpop_proof(
            key, htm="POST", htu=api.url + "/withdrawals", access_token=token
        )
    return httpx.post(api.url + "/withdrawals", json=body or REQUEST, headers=headers)


def challenge_error(r: httpx.Response) -> str:
    header = str(r.headers.get("www-authenticate", ""))
    assert "error_description=" in header, header
    return header


async def test_the_approved_withdrawal_passes_once(
    did_auth: httpx.AsyncClient, trading_api: Proc
) -> None:
    _, tok = await approved(did_auth)
    r = withdraw(trading_api, tok["access_token"])
    assert r.status_code == 202, r.text
    assert {k: r.json()[k] for k in REQUEST} == REQUEST
    r = withdraw(trading_api, tok["access_token"])
    assert r.status_code == 401 and r.json()["error"] == "invalid_token", r.text
    assert 'error="invalid_token"' in challenge_error(r) and "already used" in r.text


async def test_a_stolen_ordinary_token_cannot_withdraw(
    did_auth: httpx.AsyncClient, trading_api: Proc
) -> None:
    # A trading token for the API.
    s = await login(did_auth, audience="trading-api", scope="account:read trade:write")
    r = withdraw(trading_api, s.token)
    assert r.status_code == 403 and r.json()["error"] == "insufficient_scope", r.text
    assert 'scope="wallet:withdraw"' in challenge_error(r)
    # Today's scope policy lets a login with a second factor hold `wallet:withdraw`
    # (step-up, 60 s); such a token still names no withdrawal: refused as well.
    owner = await enrolled(did_auth)
    stepped = await login(
        did_auth, key=owner.key, audience="trading-api", scope="wallet:withdraw",
        otp=owner.next_code(),
    )
    claims = jwt.decode(stepped.token, options={"verify_signature": False})
    assert claims["scope"] == "wallet:withdraw" and "otp" in claims["amr"]
    r = withdraw(trading_api, stepped.token)
    assert r.status_code == 403 and r.json()["error"] == "insufficient_scope", r.text
    assert "no specific withdrawal" in r.json()["error_description"]


@pytest.mark.parametrize(
    ("field", "value"),
    [("amount", "2500.00"), ("amount", "250.0"), ("asset", "ETH"), ("network", "base"),
     ("address", "0x1111111111111111111111111111111111111111")],
)
async def test_a_withdrawal_token_cannot_serve_another_withdrawal(
    did_auth: httpx.AsyncClient, trading_api: Proc, field: str, value: str
) -> None:
    _, tok = await approved(did_auth)
    r = withdraw(trading_api, tok["access_token"], {**REQUEST, field: value})
    assert r.status_code == 403 and r.json()["error"] == "insufficient_scope", r.text
    assert 'error="insufficient_scope"' in challenge_error(r)
    assert withdraw(trading_api, tok["access_token"]).status_code == 202


async def test_a_withdrawal_token_expires(did_auth: httpx.AsyncClient, trading_api: Proc) -> None:
    _, tok = await approved(did_auth, ttl=2)  # expires_at 2 s ahead: the token's exp too
    exp = jwt.decode(tok["access_token"], options={"verify_signature": False})["exp"]
    assert tok["expires_in"] <= 2
    wait_until(lambda: time.time() > exp + LEEWAY + 0.5, timeout=10, what="the token's exp")
    r = withdraw(trading_api, tok["access_token"])
    assert r.status_code == 401 and r.json()["error"] == "invalid_token", r.text


async def test_a_withdrawal_token_for_another_api(
    did_auth: httpx.AsyncClient, trading_api: Proc
) -> None:
    _, tok = await approved(did_auth, audience="other-api")
    r = withdraw(trading_api, tok["access_token"])
    assert r.status_code == 401 and r.json()["error"] == "invalid_token", r.text


async def test_a_dpop_bound_withdrawal_token_needs_its_key(
    did_auth: httpx.AsyncClient, trading_api: Proc
) -> None:
    s, tok = await approved(did_auth, dpop=True)
    assert tok["token_type"] == "DPoP" and s.dpop_key is not None
    token = tok["access_token"]
    r = withdraw(trading_api, token, scheme="Bearer")
    assert r.status_code == 401 and r.json()["error"] == "invalid_token", r.text
    thief = ec.generate_private_key(ec.SECP256R1())
    r = withdraw(trading_api, token, key=thief)  # a proof, but of another key: not bound
    assert r.status_code == 401 and r.json()["error"] == "invalid_token", r.text
    assert "binding" in r.json()["error_description"]
    r = withdraw(trading_api, token, key=s.dpop_key)
    assert r.status_code == 202, r.text


async def test_the_typed_data_signature_is_bound(did_auth: httpx.AsyncClient) -> None:
    """Another account's signature, another chain id, a reused nonce, another session's
    nonce: refused by did-auth with 400 invalid_grant."""
    s = await enrolled(did_auth)
    thief = eoa_typed_signer(bytes(Account.create().key))
    for body in (
        await s.approval_body(sign=thief),
        await s.approval_body(chain_id=1),
    ):
        r = await s.authorize(body)
        assert r.status_code == 400 and r.json()["error"] == "invalid_grant", r.text
        assert "signature" in r.json()["error_description"]
    other = await login(did_auth, key=s.key)  # the same wallet's second session
    body = await other.approval_body(otp="123456")
    r = await s.authorize({**body, "signature": s.sign(_typed(body, s.chain_id)),
                           "otp": s.next_code()})
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant", r.text
    assert "another session" in r.json()["error_description"]
    body = await s.approval_body()
    assert (await s.authorize(body)).status_code == 200
    r = await s.authorize(body)
    assert r.status_code == 400 and "already used" in r.json()["error_description"], r.text


def _typed(body: dict[str, Any], chain_id: int) -> dict[str, Any]:
    from tests.withdrawals import typed_data

    return typed_data(body["authorization_details"][0], body["nonce"], body["expires_at"],
                      chain_id)
