"""/signin hands tokens only to the client's own registered origins.

Before: without `origin`, the hosted page kept any client's tokens in did-auth's own origin
(sessionStorage) and navigated to `return_to`, a path of did-auth's choosing in the query:
the tokens of a client registered for `https://rp.example` landed on the issuer's origin,
where another page (the demo, with its `?api=`) could pick them up; `origin` + `return_to`
without an opener did the same. Now: `origin` must be exactly a registered origin (or
loopback for an `any_localhost_port` client) and the page only posts to that opener; the
tab-local mode is only for a client whose origin the issuer's is (the demo client)."""

from __future__ import annotations

import html
import json
import re
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from did_auth.config.settings import Settings
from did_auth.services import Services
from tests.fixtures.servers import (
    CLIENT,
    LiveServer,
    running_app,
    settings_for,
    start_server,
    stop_server,
)
from tests.security.browser_helpers import run_browser

RP = {
    **CLIENT,
    "client_id": "rp",
    "domains": ["testserver"],
    "uris": ["http://testserver"],
    "origins": ["https://rp.example"],
}
LOCAL_RP = {**RP, "client_id": "local-rp", "any_localhost_port": True, "origins": []}
SELF_HOSTED = {**RP, "client_id": "self-hosted", "origins": ["http://testserver"]}
DEMO = {**RP, "client_id": "the-demo", "origins": [], "demo": True}

Api = tuple[httpx.AsyncClient, Services]


@pytest.fixture
def app_settings(store_kind: str, request: pytest.FixtureRequest) -> Settings:
    clients = [RP, LOCAL_RP, SELF_HOSTED, DEMO]
    if store_kind == "redis":
        redis = request.getfixturevalue("redis_server")
        kek = request.getfixturevalue("session_kek")
        return settings_for(redis_url=redis.url, key_encryption_key_file=kek, clients=clients)
    return settings_for(clients=clients)


@pytest.fixture
async def api(app_settings: Settings) -> AsyncIterator[Api]:
    async with running_app(app_settings) as pair:
        yield pair


def _config(r: httpx.Response) -> dict[str, Any]:
    match = re.search(r'data-config="([^"]*)"', r.text)
    assert match, r.text[:300]
    config: dict[str, Any] = json.loads(html.unescape(match.group(1)))
    return config


async def _signin(client: httpx.AsyncClient, **params: str) -> httpx.Response:
    return await client.get("/signin", params={"scope": "account:read", **params})


async def test_registered_origin_gets_the_popup_page(api: Api) -> None:
    client, _ = api
    r = await _signin(client, client_id="rp", origin="https://rp.example")
    assert r.status_code == 200
    assert _config(r)["origin"] == "https://rp.example"
    assert "return_to" not in _config(r)


@pytest.mark.parametrize(
    "origin",
    [
        "https://attacker.example",
        "https://rp.example.attacker.example",
        "https://rp.example/",
        "https://rp.example:443",
        "https://RP.example",
        "http://rp.example",
        "https://rp.example@attacker.example",
        "*",
        "null",
        "",
        "http://127.0.0.1:3000",  # loopback, but the client has no any_localhost_port
    ],
)
async def test_unregistered_origin_refused(api: Api, origin: str) -> None:
    client, _ = api
    r = await _signin(client, client_id="rp", origin=origin)
    assert r.status_code == 400
    assert "data-config" not in r.text


async def test_loopback_rule_only_for_any_localhost_port_clients(api: Api) -> None:
    client, _ = api
    r = await _signin(client, client_id="local-rp", origin="http://127.0.0.1:3000")
    assert r.status_code == 200 and _config(r)["origin"] == "http://127.0.0.1:3000"
    for bad in ("http://127.0.0.1.attacker.example", "https://localhost:3000", "http://[::2]:80"):
        assert (await _signin(client, client_id="local-rp", origin=bad)).status_code == 400


async def test_tokens_of_another_origin_never_stay_on_the_issuer(api: Api) -> None:
    """The attack: tokens of https://rp.example's client kept on did-auth's origin (and then
    /demo/?api=... or any page there could send them anywhere)."""
    client, _ = api
    for params in (
        {},
        {"return_to": "/demo/"},
        {"return_to": "/demo/?api=https://attacker.example"},
    ):
        r = await _signin(client, client_id="rp", **params)
        assert r.status_code == 400, params
        assert "data-config" not in r.text
        assert "registered origin" in html.unescape(r.text)


async def test_origin_and_return_to_together_refused(api: Api) -> None:
    client, _ = api
    r = await _signin(client, client_id="rp", origin="https://rp.example", return_to="/demo/")
    assert r.status_code == 400


async def test_tab_mode_for_clients_served_from_the_issuer(api: Api) -> None:
    client, _ = api
    for client_id in ("the-demo", "self-hosted"):
        r = await _signin(client, client_id=client_id, return_to="/demo/")
        assert r.status_code == 200, client_id
        assert _config(r)["return_to"] == "/demo/" and "origin" not in _config(r)
    for bad in ("//attacker.example/", "https://attacker.example/", "/\\attacker.example"):
        assert (await _signin(client, client_id="the-demo", return_to=bad)).status_code == 400


@pytest.fixture(scope="module")
def embedded() -> Iterator[LiveServer]:
    server = start_server({})  # no config: the embedded defaults (the demo client)
    yield server
    stop_server(server)


def test_popup_page_without_opener_keeps_no_token(embedded: LiveServer) -> None:
    """In Chromium: /signin?origin=... opened directly (no opener window) refuses to sign
    in, stores nothing and sends nothing elsewhere."""
    result = run_browser("signin_no_opener", embedded.url)
    assert result["disabled"] is True
    assert "not opened by the application" in result["error"]
    assert result["stored"] is None
    assert result["offsite"] == []
