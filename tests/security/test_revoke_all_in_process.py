"""The global cut-off of `did-auth sessions revoke-all` on its own, in the server (the memory
store and a Redis database of its own), on a clock the test moves.

The live test (test_revoke_all_sessions.py) also ends every session by sid, which alone
refuses the refresh and the tokens of the sessions it found; here only the cut-off is
written, as for a session the sweep has not reached yet (or that a replica created at T):
the refresh grant, the authorization-code grant and `LocalTokenCheck` (/userinfo) must refuse
by the cut-off itself, with the `revokedBefore` rule (T's whole second covered).
"""

from __future__ import annotations

import math
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from did_auth.config.settings import Settings
from did_auth.core.clock import FixedClock
from did_auth.core.flows.revoke_all import revoke_all_sessions
from did_auth.services import Services
from tests.edge.web import test_oidc as oidc
from tests.fixtures.redis_server import RedisServer
from tests.fixtures.servers import running_app, settings_for
from tests.security.oauth_clients import siwe_login

ISSUER = "http://testserver"
ClockApi = tuple[httpx.AsyncClient, Services, FixedClock]


def _settings(kind: str, request: pytest.FixtureRequest, **over: Any) -> Settings:
    if kind == "redis":
        redis: RedisServer = request.getfixturevalue("redis_server")
        # A database of its own: the cut-off ends every session of its store.
        kek = str(Path(tempfile.mkdtemp()) / "kek.bin")
        return settings_for(redis_url=redis.own_db(8), key_encryption_key_file=kek, **over)
    return settings_for(**over)


@pytest.fixture(params=["memory", "redis"])
async def app(request: pytest.FixtureRequest) -> AsyncIterator[ClockApi]:
    clock = FixedClock(math.floor(time.time()) + 0.25)
    async with running_app(_settings(request.param, request), clock=clock) as (client, svc):
        yield client, svc, clock


async def _login(client: httpx.AsyncClient) -> dict[str, Any]:
    r = await siwe_login(client, extra={"audience": ISSUER})
    assert r.status_code == 200, r.text
    tokens: dict[str, Any] = r.json()
    return tokens


async def _refresh(client: httpx.AsyncClient, rt: str) -> httpx.Response:
    return await client.post(
        "/token", data={"grant_type": "refresh_token", "refresh_token": rt, "client_id": "dapp"}
    )


async def _userinfo(client: httpx.AsyncClient, token: str) -> int:
    r = await client.get("/userinfo", headers={"Authorization": f"Bearer {token}"})
    return r.status_code


async def test_the_cutoff_alone_ends_refresh_and_tokens(app: ClockApi) -> None:
    client, svc, clock = app
    old = await _login(client)
    assert await _userinfo(client, old["access_token"]) == 200
    clock.advance(0.5)  # the command runs later within the same second
    result = await revoke_all_sessions(svc.revocations)  # no sweep: the cut-off only
    assert result.before == math.floor(clock.now())
    r = await _refresh(client, old["refresh_token"])
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant", r.text
    assert await _userinfo(client, old["access_token"]) == 401
    # A login within T's own second is covered too (whole seconds, as revokedBefore).
    same_second = await _login(client)
    assert (await _refresh(client, same_second["refresh_token"])).status_code == 400
    assert await _userinfo(client, same_second["access_token"]) == 401
    # From the next second, logins work and refresh.
    clock.advance(1.0)
    fresh = await _login(client)
    assert await _userinfo(client, fresh["access_token"]) == 200
    r = await _refresh(client, fresh["refresh_token"])
    assert r.status_code == 200, r.text
    assert await _userinfo(client, r.json()["access_token"]) == 200
    # The old session stays dead.
    assert (await _refresh(client, old["refresh_token"])).status_code == 400


async def test_a_code_from_a_login_before_the_cutoff_is_refused() -> None:
    async with oidc.oidc_app(oidc.oidc_settings()) as (client, svc):
        code, verifier, _ = await oidc.code_for(client)
        await revoke_all_sessions(svc.revocations)
        r = await oidc.exchange(client, code, verifier)
        assert r.status_code == 400 and r.json()["error"] == "invalid_grant", r.text
