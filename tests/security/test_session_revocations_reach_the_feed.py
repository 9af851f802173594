"""Every session revocation reaches the revocation feed, exactly once.

Attack (outside penetration test): refresh-token reuse detection (RFC 6819 §5.2.2.3, OAuth
2.0 Security BCP §4.14) and authorization-code replay (RFC 6749 §4.1.2: "the authorization
server [...] SHOULD revoke (when possible) all tokens previously issued based on that
authorization code") revoked the session in the store only. Nothing was written to
`GET /revocations`, so a resource server following the feed (examples/trading_api.py,
did_auth_verifier) kept accepting the session's access tokens until they expired: the thief
who replayed the refresh token, or the code, still traded with the access token it held. A
later `POST /revoke` of those access tokens found the session revoked already and added
nothing either. The same held for a refresh refused because the DID key no longer
authenticates the DID.

Now every session revocation goes through `RevocationBook.revoke_sid`, which marks the
session revoked and writes its `sid` entry in one step; `SessionStore` has no way to revoke
a session without it (`rotate` needs the book; the marking is called from the book only).
"""

from __future__ import annotations

import ast
import inspect
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from did_auth.config.settings import Settings
from did_auth.core.clock import FixedClock
from did_auth.core.errors import AccessDenied
from did_auth.core.oauth.grants.refresh_token import RefreshTokenGrant
from did_auth.core.tokens.sessions import SessionStore
from did_auth.services import Services
from did_auth.verifier import RevocationSet
from tests import siwe_text
from tests.edge.web import test_oidc as oidc
from tests.edge.web.procs import ROOT, Proc, spawn
from tests.fixtures.redis_server import free_port
from tests.fixtures.servers import LiveServer, running_app
from tests.security.oauth_clients import did_login, siwe_login

ROOT_PKG = Path(__file__).resolve().parents[2] / "did_auth"
WAIT = 10.0  # seconds a revocation may take to reach a verifier polling every second

Api = tuple[httpx.AsyncClient, Services]
ClockApi = tuple[httpx.AsyncClient, Services, FixedClock]

# The OIDC app (a confidential-less `strict` RP client) on the memory store and real Redis.
api = oidc.api


@pytest.fixture
async def clock_api(app_settings: Settings) -> AsyncIterator[ClockApi]:
    """The in-process app (memory store and real Redis) on a clock the test moves."""
    clock = FixedClock(time.time())
    async with running_app(app_settings, clock=clock) as (client, svc):
        yield client, svc, clock


def _claims(token: str) -> dict[str, Any]:
    return dict(jwt.decode(token, options={"verify_signature": False}))


async def _feed(client: httpx.AsyncClient) -> list[dict[str, Any]]:
    """Every live entry of the feed, read as a follower does (to `more: false`)."""
    entries: list[dict[str, Any]] = []
    params: dict[str, str] = {"limit": "1000"}
    while True:
        r = await client.get("/revocations", params=params)
        assert r.status_code == 200, r.text
        page = r.json()
        entries += page["revoked"]
        if not page["more"]:
            return entries
        params["since"] = page["cursor"]


async def _sid_entries(client: httpx.AsyncClient, sid: str) -> list[dict[str, Any]]:
    return [e for e in await _feed(client) if e.get("sid") == sid]


async def _follower_refuses(client: httpx.AsyncClient, *tokens: str) -> None:
    """What a verifier following the feed decides about these access tokens."""
    view = RevocationSet()
    view.apply(await _feed(client))
    for token in tokens:
        assert view.is_revoked(_claims(token)), "a feed follower still accepts the token"


async def _refresh(client: httpx.AsyncClient, rt: str) -> httpx.Response:
    return await client.post(
        "/token", data={"grant_type": "refresh_token", "refresh_token": rt, "client_id": "dapp"}
    )


# --------------------------------------------------------------------------- refresh reuse


async def test_refresh_token_reuse_is_announced_once(clock_api: ClockApi) -> None:
    client, svc, clock = clock_api
    r = await siwe_login(client)
    assert r.status_code == 200, r.text
    first = r.json()
    sid = _claims(first["access_token"])["sid"]
    rotated = await _refresh(client, first["refresh_token"])  # rt1 -> rt2
    assert rotated.status_code == 200, rotated.text
    second = rotated.json()
    clock.advance(svc.settings.refresh_grace + 1)  # past the exact-retry grace

    # The thief replays the stolen rt1: reuse detected, the whole family revoked ...
    reuse = await _refresh(client, first["refresh_token"])
    assert reuse.status_code == 400, reuse.text
    assert reuse.json()["error"] == "invalid_grant"
    assert "reuse detected" in reuse.json()["error_description"]
    # ... and announced: a verifier following the feed refuses both access tokens now.
    assert len(await _sid_entries(client, sid)) == 1
    await _follower_refuses(client, first["access_token"], second["access_token"])

    # Exactly once: more replays, the victim's rt2 and RFC 7009 revocations of the (already
    # revoked) tokens add nothing.
    assert (await _refresh(client, first["refresh_token"])).status_code == 400
    assert (await _refresh(client, second["refresh_token"])).status_code == 400
    before = await _feed(client)
    for token in (second["access_token"], first["access_token"], second["refresh_token"]):
        r = await client.post("/revoke", data={"token": token, "client_id": "dapp"})
        assert r.status_code == 200, r.text
    assert await _feed(client) == before
    assert len(await _sid_entries(client, sid)) == 1


# --------------------------------------------------------------------------- code replay


async def test_authorization_code_replay_is_announced_once(api: Api) -> None:
    client, _ = api
    code, verifier, _ = await oidc.code_for(client)
    r = await oidc.exchange(client, code, verifier)
    assert r.status_code == 200, r.text
    tokens = r.json()
    sid = _claims(tokens["access_token"])["sid"]
    assert await _sid_entries(client, sid) == []

    replay = await oidc.exchange(client, code, verifier)  # the intercepted code, again
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
    assert len(await _sid_entries(client, sid)) == 1
    await _follower_refuses(client, tokens["access_token"])
    refresh = await client.post(
        "/token",
        data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"],
              "client_id": "strict"},
    )
    assert refresh.status_code == 400, refresh.text

    assert (await oidc.exchange(client, code, verifier)).status_code == 400
    before = await _feed(client)
    r = await client.post("/revoke", data={"token": tokens["access_token"], "client_id": "strict"})
    assert r.status_code == 200, r.text
    assert await _feed(client) == before, "revoking an already revoked token added to the feed"


async def test_failed_code_exchange_is_announced(api: Api) -> None:
    client, svc = api
    code, verifier, _ = await oidc.code_for(client)
    wrong = await oidc.exchange(client, code, "x" * 43)  # RFC 7636 §4.6 mismatch
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"
    sids = [s for s in [await _spent_sid(svc, code)] if s is not None]
    assert len(sids) == 1
    assert len(await _sid_entries(client, sids[0])) == 1
    assert (await oidc.exchange(client, code, verifier)).status_code == 400  # spent
    assert len(await _sid_entries(client, sids[0])) == 1


async def _spent_sid(svc: Services, code: str) -> str | None:
    from did_auth.core.oauth.codes import code_keys, used_sid

    raw = await svc.store.get(code_keys(code)[0])
    return None if raw is None else used_sid(raw)


# --------------------------------------------------------------------------- DID re-check


async def test_did_recheck_failure_is_announced(api: Api) -> None:
    client, svc = api
    r = await did_login(client, "dapp")
    assert r.status_code == 200, r.text
    tokens = r.json()
    sid = _claims(tokens["access_token"])["sid"]
    grant = svc.token_endpoint.handlers["refresh_token"]
    assert isinstance(grant, RefreshTokenGrant)

    async def key_no_longer_authenticates(sub: str, auth_key: object) -> None:
        # What `DidLogin.recheck` answers once the DID's controller revoked the delegate.
        raise AccessDenied("the key is no longer an authentication key of the DID",
                           reason="not_authentication_key")

    original = grant.did_recheck
    grant.did_recheck = key_no_longer_authenticates
    try:
        refused = await _refresh(client, tokens["refresh_token"])
    finally:
        grant.did_recheck = original
    assert refused.status_code == 403 and refused.json()["error"] == "access_denied"
    assert len(await _sid_entries(client, sid)) == 1
    await _follower_refuses(client, tokens["access_token"])
    assert (await _refresh(client, tokens["refresh_token"])).status_code == 400


# --------------------------------------------------------------------------- structure


def _calls(attribute: str) -> list[str]:
    """`module:line` of every call `<anything>.<attribute>(...)` in did_auth."""
    found = []
    for path in sorted(ROOT_PKG.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == attribute
            ):
                found.append(f"{path.relative_to(ROOT_PKG.parent)}:{node.lineno}")
    return found


def _revoked_true() -> list[str]:
    """Where a session record is written with `revoked=True`."""
    found = []
    for path in sorted(ROOT_PKG.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.keyword) and node.arg == "revoked" and (
                isinstance(node.value, ast.Constant) and node.value.value is True
            ):
                found.append(str(path.relative_to(ROOT_PKG.parent)))
    return found


def test_sessions_are_revoked_through_the_book_only() -> None:
    # No silent revocation method on the session store ...
    assert not hasattr(SessionStore, "revoke")
    # ... the one marking of a session as revoked is reached from RevocationBook only ...
    assert {c.split(":")[0] for c in _calls("revoke_live")} == {"did_auth/core/flows/revocations.py"}
    assert set(_revoked_true()) == {"did_auth/core/tokens/sessions.py"}
    # ... and reuse detection cannot run without the book.
    parameter = inspect.signature(SessionStore.rotate).parameters["revocations"]
    assert parameter.default is inspect.Parameter.empty


# --------------------------------------------------------------------------- live


@pytest.fixture
def trading_api(live_server: LiveServer) -> Iterator[Proc]:
    """`examples/trading_api.py` following the live server's feed (its default)."""
    port = free_port()
    log = Path(tempfile.mkdtemp(prefix="trading-reuse-")) / "api.log"
    proc = spawn(
        [
            sys.executable, str(ROOT / "examples" / "trading_api.py"),
            "--issuer", live_server.url, "--audience", "trading-api", "--port", str(port),
        ],
        f"http://127.0.0.1:{port}",
        log,
    )
    yield proc
    proc.stop()


def test_trading_api_refuses_the_session_after_refresh_reuse(
    live_server: LiveServer, trading_api: Proc
) -> None:
    address, key = siwe_text.new_account()
    nonce = httpx.post(live_server.url + "/siwe/nonce", json={"client_id": "dapp"}).json()
    text = siwe_text.message(address, nonce["nonce"])
    r = httpx.post(
        live_server.url + "/siwe/verify",
        json={"client_id": "dapp", "message": text, "signature": siwe_text.sign(text, key),
              "scope": "account:read trade:write"},
    )
    assert r.status_code == 200, r.text
    first = r.json()

    def refresh(rt: str) -> httpx.Response:
        return httpx.post(
            live_server.url + "/token",
            data={"grant_type": "refresh_token", "refresh_token": rt, "client_id": "dapp"},
        )

    rotated = refresh(first["refresh_token"])
    assert rotated.status_code == 200, rotated.text
    tokens = [first["access_token"], rotated.json()["access_token"]]
    order = {"symbol": "ETH-USDC", "side": "buy", "type": "market", "quantity": "1"}
    for token in tokens:
        headers = {"Authorization": f"Bearer {token}"}
        assert httpx.get(trading_api.url + "/account", headers=headers).status_code == 200
        placed = httpx.post(trading_api.url + "/orders", headers=headers, json=order)
        assert placed.status_code == 201, placed.text

    time.sleep(1.2)  # past the live server's refresh_grace (1 s)
    reuse = refresh(first["refresh_token"])
    assert reuse.status_code == 400, reuse.text
    assert "reuse detected" in reuse.json()["error_description"]

    deadline = time.monotonic() + WAIT
    for token in tokens:
        headers = {"Authorization": f"Bearer {token}"}
        while True:
            account = httpx.get(trading_api.url + "/account", headers=headers)
            placed = httpx.post(trading_api.url + "/orders", headers=headers, json=order)
            if account.status_code == 401 and placed.status_code == 401:
                assert account.json()["error_description"] == "token revoked"
                break
            assert time.monotonic() < deadline, (
                "the trading API still accepts the tokens of a session revoked by reuse "
                f"detection: /account {account.status_code}, /orders {placed.status_code}"
            )
            time.sleep(0.1)
