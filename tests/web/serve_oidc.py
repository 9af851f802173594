"""`did-auth serve` with the OIDC router installed, for as long as `create_app` does not
install it itself (the lead wires `install_oidc` into create_app; then the tests use the
real `did-auth serve` and this launcher is no longer used).

    python tests/web/serve_oidc.py [--config FILE] --port P

Same behaviour as `did-auth serve` with one worker: embedded defaults without a config,
issuer http://127.0.0.1:P, and POST /token dispatching grant_type=authorization_code to
`did_auth.api.oidc.authorization_code_grant` the way create_app will.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute

from did_auth.api.app import create_app
from did_auth.api.forms import read_form
from did_auth.api.oidc import authorization_code_grant, discovery_extra, install_oidc
from did_auth.settings import load_settings


def wire(app: FastAPI) -> None:
    """What create_app will do: install, dispatch the code grant, merge discovery."""
    svc = app.state.services
    install_oidc(app, svc)
    routes = app.router.routes
    for i, route in enumerate(routes):
        if isinstance(route, APIRoute) and route.path == "/token":
            original = route.endpoint

            async def token(request: Request) -> Response:
                form = await read_form(request)  # the body is cached for `original`
                if form.get("grant_type") == "authorization_code":
                    body = await authorization_code_grant(form, request)
                    return JSONResponse(
                        body, headers={"Cache-Control": "no-store", "Pragma": "no-cache"}
                    )
                return await original(request)  # type: ignore[no-any-return]

            routes[i] = APIRoute("/token", token, methods=["POST"])
        elif isinstance(route, APIRoute) and route.path in (
            "/.well-known/openid-configuration",
            "/.well-known/oauth-authorization-server",
        ):
            base = route.endpoint

            async def discovery(base: Any = base) -> dict[str, Any]:
                doc: dict[str, Any] = await base()
                return {**doc, **discovery_extra(svc.settings)}

            routes[i] = APIRoute(route.path, discovery, methods=["GET"])


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--config")
    p.add_argument("--port", type=int, required=True)
    args = p.parse_args()
    overrides = {} if args.config else {"issuer": f"http://127.0.0.1:{args.port}"}
    settings = load_settings(args.config, overrides=overrides)
    app = create_app(settings)
    if getattr(app.state, "oidc", None) is None:
        wire(app)
    print(f"did-auth {settings.issuer} (test launcher with OIDC)", flush=True)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
