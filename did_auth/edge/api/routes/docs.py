"""`GET /docs`: the OpenAPI description (`/openapi.json`) in Swagger UI, with no CDN: the
UI's files come from the `swagger-ui-bundle` package, served at `/docs/static/`, and the
page allows only its own origin (Content-Security-Policy `'self'`; images also `data:`,
the UI's icons are data: URIs in its stylesheet)."""

from __future__ import annotations

from pathlib import Path
from typing import Final

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, Response
from starlette.staticfiles import StaticFiles

__all__ = ["STATIC_PATH", "router", "static_files"]

STATIC_PATH: Final = "/docs/static"
CSP: Final = (
    "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
_HEADERS: Final = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
_PAGE: Final = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>did-auth API</title>
<link rel="stylesheet" href="{STATIC_PATH}/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="{STATIC_PATH}/swagger-ui-bundle.js"></script>
<script src="/docs/init.js"></script>
</body>
</html>
"""
# An external script, not inline: the CSP has no 'unsafe-inline'.
_INIT: Final = """window.ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  presets: [SwaggerUIBundle.presets.apis],
});
"""

router = APIRouter(include_in_schema=False)


def static_files() -> StaticFiles:
    import swagger_ui_bundle

    return StaticFiles(directory=Path(swagger_ui_bundle.swagger_ui_path))


@router.get("/docs")
async def docs() -> HTMLResponse:
    return HTMLResponse(_PAGE, headers=_HEADERS)


@router.get("/docs/init.js")
async def docs_init() -> Response:
    return Response(_INIT, media_type="text/javascript", headers=_HEADERS)
