"""The demo dApp (`/demo/`, only with a `demo = true` client) and the static assets
(`/static/<file>`: JS, CSS and images of the pages; `/static/client/<file>`: the modules of
the @did-auth/client package, clients/js/src, which `/static/did-auth-client.js` re-exports)."""

from __future__ import annotations

from typing import Any, Final

import orjson
from fastapi import APIRouter
from fastapi.responses import JSONResponse, RedirectResponse, Response

from did_auth.config.settings import ClientConfig
from did_auth.edge.api.deps import ServicesDep
from did_auth.edge.api.pages import (
    CLIENT_DIR,
    STATIC_TYPES,
    asset,
    client_names,
    html_headers,
    render,
    static_names,
)

__all__ = ["demo_page_config", "router"]

router = APIRouter()

# The demo sends its access token to a trading API: only to the demo client's configured
# `demo_api_origins`, which are exactly the page's CSP connect-src (besides 'self').
_DEMO_SCOPES: Final = ("account:read", "trade:write")
_DEMO_API_PORT: Final = "9000"  # examples/trading_api.py's default port


def _not_found() -> Response:
    body = {"error": "not_found", "error_description": "no such page"}
    return JSONResponse(body, status_code=404)


def demo_page_config(client: ClientConfig) -> dict[str, Any]:
    """What the demo page may do, fixed by the server: the client it signs in as and the
    trading-API origins it may send that client's tokens to (nothing from the query)."""
    audience = "trading-api" if "trading-api" in client.audiences else client.audiences[0]
    scopes: list[str] = [s for s in _DEMO_SCOPES if s in client.scopes]
    scopes = scopes or list(client.default_scopes)
    defaults = [
        o.removesuffix("*") + _DEMO_API_PORT if o.endswith(":*") else o
        for o in client.demo_api_origins
    ]
    return {
        "client_id": client.client_id,
        "audience": audience,
        "scope": " ".join(scopes),
        "api_origins": list(client.demo_api_origins),
        "api_default": defaults[0] if defaults else "",
    }


@router.get("/demo", include_in_schema=False)
async def demo_redirect(svc: ServicesDep) -> Response:
    if svc.settings.demo_client is None:
        return _not_found()
    return RedirectResponse("/demo/", status_code=308)


@router.get("/demo/", include_in_schema=False)
async def demo(svc: ServicesDep) -> Response:
    """The demo dApp, only where a client is flagged `demo = true` (the embedded default)."""
    client = svc.settings.demo_client
    if client is None:
        return _not_found()
    # The issuer: the audience of the page's own sign-in for account security (passkeys,
    # TOTP) and withdrawal approvals, which only take tokens for did-auth itself.
    page_config = {**demo_page_config(client), "issuer": svc.settings.issuer}
    config = orjson.dumps(page_config).decode("utf-8")
    # CSP connect-src: this server and exactly the configured API origins, no wildcard
    # scheme: even a page script that ignored its config could not reach another origin.
    connect = " ".join(["'self'", *client.demo_api_origins])
    return Response(
        render("demo.html", CONFIG=config),
        media_type="text/html; charset=utf-8",
        headers=html_headers(connect_src=connect),
    )


def _no_such_file() -> Response:
    body = {"error": "not_found", "error_description": "no such file"}
    return JSONResponse(body, status_code=404)


def _asset_response(path: str) -> Response:
    ext = path[path.rfind(".") :]
    return Response(
        asset(path),
        media_type=STATIC_TYPES[ext],
        headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"},
    )


@router.get("/static/{name}", include_in_schema=False)
async def static(name: str) -> Response:
    # Only names listed from the folder itself: nothing from the request reaches a path.
    if name not in static_names():
        return _no_such_file()
    return _asset_response(name)


@router.get("/static/client/{name}", include_in_schema=False)
async def client_module(name: str) -> Response:
    """The @did-auth/client package's ES modules (they import each other relatively)."""
    if name not in client_names():
        return _no_such_file()
    return _asset_response(f"{CLIENT_DIR}/{name}")
