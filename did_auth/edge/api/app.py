"""create_app(settings): the did-auth HTTP API (routes as in docs/interface.md).

The application is assembled here and nothing else: the services on `app.state` (read by
every route through `did_auth.edge.api.deps.ServicesDep`), the one error mapping, the
middlewares, the routers of `did_auth.edge.api.routes`, and the login hot path.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Final

from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware

from did_auth import __version__
from did_auth.config.settings import Settings
from did_auth.core.errors import DidAuthError
from did_auth.edge.api.context import RequestContextMiddleware
from did_auth.edge.api.errors import install_error_handlers
from did_auth.edge.api.hotpath import HotPaths, HotRoute
from did_auth.edge.api.limits import BodySizeLimit
from did_auth.edge.api.metrics_listener import start_metrics_listener
from did_auth.edge.api.models import NonceRequest, SiweVerifyRequest
from did_auth.edge.api.openapi import install_openapi
from did_auth.edge.api.routes import ROUTERS, docs, siwe
from did_auth.edge.api.routes.siwe import siwe_nonce_handler, siwe_verify_handler
from did_auth.services import Services, build_services

__all__ = ["app_from_env", "create_app"]

_LOOPBACK_ORIGIN_REGEX: Final = r"http://(localhost|127\.0\.0\.1|\[::1\])(:[0-9]{1,5})?"


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Start the services (chains, watchers, keys) and the metrics listener; close both."""
    svc: Services = app.state.services
    await svc.start()
    metrics_listener = None
    try:
        if svc.settings.metrics_listen:
            metrics_listener = await start_metrics_listener(svc.settings.metrics_listen)
        yield
    finally:
        if metrics_listener is not None:
            await metrics_listener.close()
        await svc.close()


def create_app(settings: Settings, *, services: Services | None = None) -> FastAPI:
    svc = services or build_services(settings)
    app = FastAPI(
        title="did-auth",
        version=__version__,
        lifespan=_lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.services = svc
    install_error_handlers(app)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(RequestContextMiddleware, trusted_proxies=settings.trusted_proxies)
    _install_cors(app, settings)
    for router in ROUTERS:
        app.include_router(router)
    app.include_router(docs.router)  # GET /docs: Swagger UI from a package, no CDN
    app.mount(docs.STATIC_PATH, docs.static_files(), name="docs-static")
    if settings.dev_rpc and settings.embedded and any(
        c.rpc_url == "embedded" for c in settings.chains
    ):
        from did_auth.edge.api.routes import dev

        app.include_router(dev.router)  # development only: the embedded chain's JSON-RPC
        app.add_middleware(dev.DevRpcSameOrigin)  # outside CORS: no cross-site /dev/rpc
    # The login hot path: the two SIWE login routes skip FastAPI's per-request machinery
    # (same handlers as the routes; see did_auth/edge/api/hotpath.py). Appended last, so it is
    # the innermost of the app's own middlewares: context, metrics, body limit still apply.
    routes = {r.path: r for r in siwe.router.routes if isinstance(r, APIRoute)}
    app.user_middleware.append(
        Middleware(
            HotPaths,
            routes={
                "/siwe/nonce": HotRoute(NonceRequest, siwe_nonce_handler, routes["/siwe/nonce"]),
                "/siwe/verify": HotRoute(
                    SiweVerifyRequest, siwe_verify_handler, routes["/siwe/verify"]
                ),
            },
            on_error=app.exception_handlers[DidAuthError],
            services=svc,
        )
    )
    install_openapi(app)
    return app


def _install_cors(app: FastAPI, settings: Settings) -> None:
    """CORS for the clients' registered `origins` (and loopback for an
    `any_localhost_port` client). Bearer tokens only, never cookies: no credentialed CORS."""
    origins = sorted({o for c in settings.clients for o in c.origins})
    loopback = any(c.any_localhost_port for c in settings.clients)
    if origins or loopback:
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


def app_from_env() -> Any:
    """uvicorn factory for `--workers N`: reads the config path from DID_AUTH_CONFIG (a
    worker that fails to start says why in one line, did_auth.edge.api.startup_guard)."""
    from did_auth.config.settings import load_settings
    from did_auth.edge.api.startup_guard import StartupGuard

    path = os.environ.get("DID_AUTH_CONFIG") or None
    return StartupGuard(create_app(load_settings(path)))
