"""The HTML the server renders itself (hosted sign-in page, error page, demo) and its static
assets, served with a CSP that allows no inline script (all JS is in files), no framing,
no referrer, and `nosniff`."""

from __future__ import annotations

import html
from functools import cache
from importlib import resources
from typing import Final

import orjson
from fastapi.responses import Response

from did_auth.core.flows.oidc import SignInPage
from did_auth.edge.api.deps import NO_STORE

__all__ = [
    "CLIENT_DIR",
    "STATIC_TYPES",
    "asset",
    "client_names",
    "error_page",
    "html_headers",
    "page_response",
    "render",
    "static_names",
]

_CSP_BASE: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
STATIC_TYPES: Final = {
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
}


# The @did-auth/client package's modules, served at /static/client/: in the repository
# `did_auth/edge/web/static/client` is a symbolic link to `clients/js/src`, so the server, the npm
# package and the pages share one copy (a wheel holds the files themselves).
CLIENT_DIR: Final = "client"


@cache
def asset(name: str) -> bytes:
    """A file of `did_auth/edge/web/static/`; `name` is a file name, or `client/<file name>`."""
    return resources.files("did_auth.edge.web").joinpath("static", *name.split("/")).read_bytes()


@cache
def client_names() -> frozenset[str]:
    """The file names of the client package's modules (`.js`)."""
    folder = resources.files("did_auth.edge.web").joinpath("static", CLIENT_DIR)
    return frozenset(p.name for p in folder.iterdir() if p.is_file() and p.name.endswith(".js"))


@cache
def static_names() -> frozenset[str]:
    folder = resources.files("did_auth.edge.web").joinpath("static")
    return frozenset(
        p.name
        for p in folder.iterdir()
        if p.is_file() and any(p.name.endswith(ext) for ext in STATIC_TYPES)
    )


def html_headers(*, connect_src: str = "'self'", opener: bool = False) -> dict[str, str]:
    return {
        **NO_STORE,
        "Content-Security-Policy": f"{_CSP_BASE}; connect-src {connect_src}",
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff",
        # The popup mode posts its result to the opener window: keep that link then.
        "Cross-Origin-Opener-Policy": "unsafe-none" if opener else "same-origin",
    }


def render(template: str, **values: str) -> str:
    # {{HEAD}}: the head every page shares (charset, viewport, referrer, style, icon).
    text = asset(template).decode("utf-8").replace("{{HEAD}}", asset("head.html").decode("utf-8"))
    for key, value in values.items():
        text = text.replace("{{" + key + "}}", html.escape(value, quote=True))
    return text


def page_response(page: SignInPage) -> Response:
    config = orjson.dumps(page.to_json()).decode("utf-8")
    title = f"Sign in to {page.client_name}"
    body = render("signin.html", TITLE=title, CLIENT=page.client_name, CONFIG=config)
    return Response(
        body,
        media_type="text/html; charset=utf-8",
        headers=html_headers(opener=page.origin is not None),
    )


def error_page(title: str, message: str, status: int = 400) -> Response:
    body = render("error.html", TITLE=title, MESSAGE=message)
    return Response(
        body, status_code=status, media_type="text/html; charset=utf-8", headers=html_headers()
    )
