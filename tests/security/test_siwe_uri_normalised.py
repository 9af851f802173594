"""A SIWE `uri` with user information or dot-segments is refused (EIP-4361 `uri` is an
RFC 3986 URI naming the resource; RFC 3986 §5.2.4 removes dot-segments, so
`http://localhost:3000/app/../admin` *is* `/admin`: a registered prefix `/app` must not
match it). Real logins, signed by a fresh key, against both stores (memory, real Redis)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from did_auth.config.settings import Settings
from did_auth.services import Services
from tests import siwe_text
from tests.fixtures.servers import CLIENT, running_app, settings_for

Api = tuple[httpx.AsyncClient, Services]


@pytest.fixture
def app_settings(store_kind: str, request: pytest.FixtureRequest) -> Settings:
    # The client may log in only for resources under http://localhost:3000/app.
    clients = [{**CLIENT, "uris": ["http://localhost:3000/app"]}]
    if store_kind == "redis":
        redis = request.getfixturevalue("redis_server")
        kek = request.getfixturevalue("session_kek")
        return settings_for(redis_url=redis.url, key_encryption_key_file=kek, clients=clients)
    return settings_for(clients=clients)


@pytest.fixture
async def api(app_settings: Settings) -> AsyncIterator[Api]:
    async with running_app(app_settings) as pair:
        yield pair


async def _login(client: httpx.AsyncClient, uri: str) -> httpx.Response:
    address, key = siwe_text.new_account()
    r = await client.post("/siwe/nonce", json={"client_id": "dapp"})
    assert r.status_code == 200, r.text
    text = siwe_text.message(address, r.json()["nonce"], uri=uri)
    body = {"client_id": "dapp", "message": text, "signature": siwe_text.sign(text, key)}
    return await client.post("/siwe/verify", json=body)


async def test_uri_under_the_registered_prefix_still_logs_in(api: Api) -> None:
    client, _ = api
    r = await _login(client, "http://localhost:3000/app/login")
    assert r.status_code == 200, r.text


@pytest.mark.parametrize(
    "uri",
    [
        "http://localhost:3000/app/../admin",
        "http://localhost:3000/app/..",
        "http://localhost:3000/app/./login",
        "http://localhost:3000/app/%2e%2e/admin",
        "http://localhost:3000/app/%2E%2E/admin",
        "http://localhost:3000/app/.%2e/admin",
        "http://localhost:3000/app/%2e/login",
        "http://localhost:3000/app%2f..%2fadmin",
    ],
)
async def test_dot_segments_refused(api: Api, uri: str) -> None:
    client, _ = api
    r = await _login(client, uri)
    assert r.status_code == 400, r.text
    assert r.json()["error"] == "invalid_grant"
    assert "uri" in r.json()["error_description"]


@pytest.mark.parametrize(
    "uri",
    [
        "http://user@localhost:3000/app/login",
        "http://user:secret@localhost:3000/app/login",
        "http://@localhost:3000/app/login",
    ],
)
async def test_userinfo_refused(api: Api, uri: str) -> None:
    client, _ = api
    r = await _login(client, uri)
    assert r.status_code == 400, r.text
    assert r.json()["error"] == "invalid_grant"
    assert "uri" in r.json()["error_description"]
