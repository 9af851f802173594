"""HTTP front of the OIDC code flow, the hosted sign-in page, the demo dApp and static assets.

Wiring (in `create_app`): `install_oidc(app, services)` adds the routes below and CORS for
the clients' registered `origins`. The code grant itself is a handler of the token endpoint
(`did_auth.oauth.grants.authorization_code`); discovery is `did_auth.oauth.discovery`.

| route                         | what                                                       |
| ----------------------------- | ---------------------------------------------------------- |
| GET/POST `/authorize`         | validate (OIDC Core §3.1.2), then the sign-in page         |
| POST `/authorize/complete`    | `{request_id, message, signature}` -> `{"redirect": url}`  |
| POST `/authorize/cancel`      | `{request_id}` -> `{"redirect": url?error=access_denied}`   |
| GET/POST `/userinfo`          | Bearer (or DPoP) access token -> `{"sub", ...}`            |
| GET `/signin`                 | hosted page for plain dApp logins (client_id, scope, ...)  |
| GET `/demo/`                  | the demo dApp (only with a `demo = true` client; else 404) |
| GET `/static/<file>`          | JS, CSS and images of the pages, `did-auth-client.js`      |

HTML is served with a CSP that allows no inline script (all JS is in files), no framing,
no referrer, and `nosniff`.
"""

from __future__ import annotations

import html
from functools import cache
from importlib import resources
from typing import Any, Final
from urllib.parse import parse_qsl

import orjson
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.middleware.cors import CORSMiddleware

from did_auth.api.context import request_context
from did_auth.api.resource_auth import access_claims
from did_auth.flows.oidc import (
    AuthorizePageError,
    AuthorizeRedirectError,
    OidcProvider,
    SignInPage,
    userinfo_claims,
)
from did_auth.monitoring.audit import AuditEvent, Outcome
from did_auth.monitoring.metrics import METRICS
from did_auth.services import Services
from did_auth.settings import ClientConfig

__all__ = ["install_oidc", "router"]

router = APIRouter()

_NO_STORE: Final = {"Cache-Control": "no-store", "Pragma": "no-cache"}
_CSP_BASE: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
# The demo sends its access token to a trading API: only to the demo client's configured
# `demo_api_origins`, which are exactly the page's CSP connect-src (besides 'self').
_DEMO_SCOPES: Final = ("account:read", "trade:write")
_DEMO_API_PORT: Final = "9000"  # examples/trading_api.py's default port
_LOOPBACK_ORIGIN_REGEX: Final = r"http://(localhost|127\.0\.0\.1|\[::1\])(:[0-9]{1,5})?"
_STATIC_TYPES: Final = {
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
}


# --- wiring -------------------------------------------------------------------------------


def install_oidc(app: FastAPI, services: Services) -> None:
    """Add the OIDC / sign-in / demo routes and CORS for registered client origins."""
    if getattr(app.state, "oidc", None) is not None:
        return  # installed already
    app.state.oidc = OidcProvider(
        settings=services.settings,
        clock=services.clock,
        store=services.store,
        keys=services.keys,
        sessions=services.sessions,
        siwe=services.siwe,
    )
    app.include_router(router)
    settings = services.settings
    origins = sorted({o for c in settings.clients for o in c.origins})
    loopback = any(c.any_localhost_port for c in settings.clients)
    if origins or loopback:
        # Bearer tokens only, never cookies: no credentialed CORS.
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_origin_regex=_LOOPBACK_ORIGIN_REGEX if loopback else None,
            allow_methods=["GET", "POST"],
            allow_headers=["authorization", "content-type", "dpop"],
            expose_headers=["DPoP-Nonce", "WWW-Authenticate", "Retry-After"],
            allow_credentials=False,
            max_age=600,
        )


def _provider(request: Request) -> OidcProvider:
    provider: OidcProvider = request.app.state.oidc
    return provider


def _services(request: Request) -> Services:
    svc: Services = request.app.state.services
    return svc


# --- pages --------------------------------------------------------------------------------


@cache
def _asset(name: str) -> bytes:
    return resources.files("did_auth.web").joinpath("static", name).read_bytes()


@cache
def _static_names() -> frozenset[str]:
    folder = resources.files("did_auth.web").joinpath("static")
    return frozenset(
        p.name
        for p in folder.iterdir()
        if p.is_file() and any(p.name.endswith(ext) for ext in _STATIC_TYPES)
    )


def _html_headers(*, connect_src: str = "'self'", opener: bool = False) -> dict[str, str]:
    return {
        **_NO_STORE,
        "Content-Security-Policy": f"{_CSP_BASE}; connect-src {connect_src}",
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff",
        # The popup mode posts its result to the opener window: keep that link then.
        "Cross-Origin-Opener-Policy": "unsafe-none" if opener else "same-origin",
    }


def _render(template: str, **values: str) -> str:
    text = _asset(template).decode("utf-8")
    for key, value in values.items():
        text = text.replace("{{" + key + "}}", html.escape(value, quote=True))
    return text


def _page_response(page: SignInPage) -> Response:
    config = orjson.dumps(page.to_json()).decode("utf-8")
    title = f"Sign in to {page.client_name}"
    body = _render("signin.html", TITLE=title, CLIENT=page.client_name, CONFIG=config)
    return Response(
        body,
        media_type="text/html; charset=utf-8",
        headers=_html_headers(opener=page.origin is not None),
    )


def _error_page(title: str, message: str, status: int = 400) -> Response:
    body = _render("error.html", TITLE=title, MESSAGE=message)
    return Response(
        body, status_code=status, media_type="text/html; charset=utf-8", headers=_html_headers()
    )


def _params(items: list[tuple[str, str]]) -> tuple[dict[str, str], frozenset[str]]:
    params: dict[str, str] = {}
    repeated: set[str] = set()
    for key, value in items:
        if key in params:
            repeated.add(key)
        params[key] = value
    return params, frozenset(repeated)


async def _authorize(request: Request, items: list[tuple[str, str]]) -> Response:
    # Each request parks state for REQUEST_TTL: budgeted per IP like DID challenges.
    await _services(request).guard.nonce_request(request_context(request), kind="challenge")
    params, repeated = _params(items)
    try:
        _, page = await _provider(request).authorize(params, repeated)
    except AuthorizePageError as exc:
        return _error_page(exc.title, exc.message)
    except AuthorizeRedirectError as exc:
        return RedirectResponse(exc.location, status_code=302, headers=_NO_STORE)
    return _page_response(page)


@router.get("/authorize", include_in_schema=True)
async def authorize_get(request: Request) -> Response:
    """OIDC Core §3.1.2.1: the authorization request as query parameters."""
    return await _authorize(request, request.query_params.multi_items())


@router.post("/authorize")
async def authorize_post(request: Request) -> Response:
    """OIDC Core §3.1.2.1: the same request form-encoded (HTTP POST is also supported)."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    try:
        if ctype != "application/x-www-form-urlencoded":
            raise ValueError(ctype)
        items = parse_qsl((await request.body()).decode("utf-8"), keep_blank_values=True)
    except (UnicodeDecodeError, ValueError):
        # Shown, not redirected: there is no verified redirect URI yet.
        return _error_page("Invalid request", "Expected a form-encoded authorization request.")
    return await _authorize(request, items)


class CompleteRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    request_id: str = Field(max_length=128)
    message: str = Field(max_length=16 * 1024)
    signature: str = Field(max_length=2 + 2 * 16 * 1024)


class CancelRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    request_id: str = Field(max_length=128)


@router.post("/authorize/complete")
async def authorize_complete(request: Request, body: CompleteRequest) -> Response:
    svc = _services(request)
    ctx = request_context(request)
    await svc.guard.verify_request(ctx)
    await svc.keys.refresh()
    url, grant = await _provider(request).complete(
        body.request_id, body.message, body.signature, ctx
    )
    request.state.client_id = grant.client_id
    METRICS.logins.labels(method="siwe", outcome="success").inc()
    svc.audit.emit(
        AuditEvent.LOGIN_SUCCESS,
        Outcome.SUCCESS,
        request_id=ctx.request_id,
        client_id=grant.client_id,
        subject=grant.sub,
        ip=ctx.ip,
        method="siwe",
        flow="authorization_code",
        sid=grant.sid,
        scope=grant.scope,
        amr=list(grant.amr),
        dpop=grant.jkt is not None,
    )
    return JSONResponse({"redirect": url}, headers=_NO_STORE)


@router.post("/authorize/cancel")
async def authorize_cancel(request: Request, body: CancelRequest) -> Response:
    url = await _provider(request).cancel(body.request_id)
    return JSONResponse({"redirect": url}, headers=_NO_STORE)


async def _userinfo(request: Request) -> Response:
    # OIDC Core §5.3.1 / RFC 6750 / RFC 9449 §7: the shared protected-resource check; its
    # failures are answered with their challenge by did_auth.api.errors.
    info = userinfo_claims(await access_claims(request))
    return JSONResponse(info, headers=_NO_STORE)


@router.get("/userinfo")
async def userinfo_get(request: Request) -> Response:
    return await _userinfo(request)


@router.post("/userinfo")
async def userinfo_post(request: Request) -> Response:
    return await _userinfo(request)


@router.get("/signin")
async def signin(request: Request) -> Response:
    params, repeated = _params(request.query_params.multi_items())
    if repeated:
        return _error_page("Invalid request", f"Parameter repeated: {sorted(repeated)[0]}.")
    try:
        page = _provider(request).signin_page(params)
    except AuthorizePageError as exc:
        return _error_page(exc.title, exc.message)
    return _page_response(page)


def _demo_client(request: Request) -> ClientConfig | None:
    client: ClientConfig | None = _services(request).settings.demo_client
    return client


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
async def demo_redirect(request: Request) -> Response:
    if _demo_client(request) is None:
        return _not_found()
    return RedirectResponse("/demo/", status_code=308)


@router.get("/demo/", include_in_schema=False)
async def demo(request: Request) -> Response:
    """The demo dApp, only where a client is flagged `demo = true` (the embedded default)."""
    client = _demo_client(request)
    if client is None:
        return _not_found()
    config = orjson.dumps(demo_page_config(client)).decode("utf-8")
    # CSP connect-src: this server and exactly the configured API origins, no wildcard
    # scheme: even a page script that ignored its config could not reach another origin.
    connect = " ".join(["'self'", *client.demo_api_origins])
    return Response(
        _render("demo.html", CONFIG=config),
        media_type="text/html; charset=utf-8",
        headers=_html_headers(connect_src=connect),
    )


@router.get("/static/{name}", include_in_schema=False)
async def static(name: str) -> Response:
    if name not in _static_names():
        return JSONResponse(
            {"error": "not_found", "error_description": "no such file"}, status_code=404
        )
    ext = name[name.rfind(".") :]
    return Response(
        _asset(name),
        media_type=_STATIC_TYPES[ext],
        headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"},
    )
