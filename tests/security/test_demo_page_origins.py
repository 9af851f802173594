"""/demo/ never sends a token to an origin it was not configured with.

Before: `/demo/?api=https://attacker.example` made the page send the signed-in user's
access token to any https host (its CSP allowed `connect-src https:`). Now the trading-API
origins are server-side configuration (`demo_api_origins` of the `demo = true` client;
embedded default: loopback only), injected into the page and enforced twice: the page
refuses any other API URL, and the CSP connect-src lists exactly those origins. Without a
demo client there is no /demo/ page at all."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from did_auth.config.settings import load_settings
from did_auth.core.errors import ConfigError
from tests.fixtures.servers import (
    CLIENT,
    LiveServer,
    config_dict,
    running_app,
    settings_for,
    start_server,
    stop_server,
)
from tests.security.browser_helpers import run_browser

ROOT = Path(__file__).resolve().parents[2]
ATTACKER = "https://attacker.example"
LOOPBACK = ["http://127.0.0.1:*", "http://localhost:*"]

DEMO = {
    **CLIENT,
    "client_id": "shop-demo",
    "domains": ["testserver"],
    "uris": ["http://testserver"],
    "demo": True,
    "demo_api_origins": ["https://api.shop.example"],
}


def _connect_src(response: httpx.Response) -> list[str]:
    csp = response.headers["content-security-policy"]
    (directive,) = [d.strip() for d in csp.split(";") if d.strip().startswith("connect-src ")]
    return directive.split()[1:]


def _page_config(text: str) -> dict[str, Any]:
    match = re.search(r'<main id="demo"[^>]*data-config="([^"]*)"', text)
    assert match, text[:500]
    config: dict[str, Any] = json.loads(html.unescape(match.group(1)))
    return config


@pytest.fixture(scope="module")
def embedded() -> Iterator[LiveServer]:
    server = start_server({})  # no config: the embedded defaults, with the demo client
    yield server
    stop_server(server)


def test_embedded_demo_allows_loopback_apis_only(embedded: LiveServer) -> None:
    r = httpx.get(f"{embedded.url}/demo/", params={"api": ATTACKER})
    assert r.status_code == 200
    assert _connect_src(r) == ["'self'", *LOOPBACK]
    config = _page_config(r.text)
    assert config["client_id"] == "demo"
    assert config["api_origins"] == LOOPBACK
    assert config["api_default"] == "http://127.0.0.1:9000"
    assert "attacker" not in r.text


async def test_configured_demo_client_sets_exactly_its_api_origins() -> None:
    async with running_app(settings_for(clients=[CLIENT, DEMO])) as (client, _):
        r = await client.get("/demo/", params={"api": ATTACKER})
        assert r.status_code == 200
        assert _connect_src(r) == ["'self'", "https://api.shop.example"]
        csp = r.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert "unsafe-inline" not in csp and "<script>" not in r.text
        assert r.headers["x-frame-options"] == "DENY"
        assert "https:" not in _connect_src(r)
        config = _page_config(r.text)
        assert config["client_id"] == "shop-demo"
        assert config["api_origins"] == ["https://api.shop.example"]
        assert config["api_default"] == "https://api.shop.example"
        assert (await client.get("/demo", follow_redirects=False)).status_code == 308


async def test_no_demo_client_no_demo_page() -> None:
    # A client called "demo" is not the demo client unless it says so.
    named_demo = {**CLIENT, "client_id": "demo"}
    async with running_app(settings_for(clients=[CLIENT, named_demo])) as (client, _):
        for path in ("/demo/", "/demo"):
            r = await client.get(path, follow_redirects=False)
            assert r.status_code == 404, path
            assert r.json()["error"] == "not_found"
        assert (await client.get("/static/demo.js")).status_code == 200  # just a file


@pytest.mark.parametrize(
    ("clients", "problem"),
    [
        ([DEMO, {**DEMO, "client_id": "second"}], "at most one client may have demo = true"),
        ([{**CLIENT, "demo_api_origins": ["https://api.example"]}], "only for the demo client"),
        ([{**DEMO, "demo_api_origins": ["https:"]}], "demo_api_origin"),
        ([{**DEMO, "demo_api_origins": ["*"]}], "demo_api_origin"),
        ([{**DEMO, "demo_api_origins": ["https://*.example"]}], "demo_api_origin"),
        ([{**DEMO, "demo_api_origins": ["https://api.example/"]}], "demo_api_origin"),
        ([{**DEMO, "demo_api_origins": ["https://API.example"]}], "demo_api_origin"),
        ([{**DEMO, "demo_api_origins": ["https://u@api.example"]}], "demo_api_origin"),
        ([{**DEMO, "demo_api_origins": ["https://api.example:*"]}], "demo_api_origin"),
    ],
)
def test_demo_settings_are_checked(
    clients: list[dict[str, Any]], problem: str, tmp_path: Path
) -> None:
    import tomli_w

    path = tmp_path / "did-auth.toml"
    path.write_text(tomli_w.dumps(config_dict(clients=clients)))
    with pytest.raises(ConfigError) as err:
        load_settings(path, environ={})
    assert problem in "; ".join(err.value.problems)


def test_embedded_defaults_flag_the_demo_client() -> None:
    settings = load_settings(None, environ={})
    demo = settings.demo_client
    assert demo is not None and demo.client_id == "demo"
    assert demo.demo_api_origins == LOOPBACK


def test_browser_never_sends_the_token_to_an_unconfigured_api(embedded: LiveServer) -> None:
    """Chromium, signed-in session in the tab, `?api=https://attacker.example` in the URL
    and in storage, the buttons pressed, the URL typed in, and a raw fetch: no request
    leaves for the attacker."""
    result = run_browser("demo_api", embedded.url)
    leaked = [r for r in result["offsite"] if "attacker" in r["url"]]
    assert leaked == [], leaked
    # Only the configured default API (loopback) was called, with the token.
    assert {r["url"].split("/")[2] for r in result["offsite"]} <= {"127.0.0.1:9000"}
    assert result["cspBlocked"] is True
    assert "https:" not in result["csp"].split("connect-src")[1].split(";")[0].split()
    assert result["inputAfterLoad"] == "http://127.0.0.1:9000"
    assert "Ignored ?api=https://attacker.example" in result["errorAfterLoad"]
    assert "does not send tokens to https://attacker.example/v1" in result["errorAfterTyping"]
    assert "does not send tokens to https://attacker.example/v1" in result["errorAfterCall"]
    assert result["stored"] != ATTACKER and "attacker" not in (result["stored"] or "")
