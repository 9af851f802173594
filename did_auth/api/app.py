"""create_app(settings): the did-auth HTTP API (routes as in docs/interface.md)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware import Middleware

from did_auth import __version__
from did_auth.api.context import RequestContextMiddleware, request_context
from did_auth.api.errors import install_error_handlers
from did_auth.api.forms import read_form
from did_auth.api.hotpath import HotPaths, HotRoute
from did_auth.api.limits import BodySizeLimit
from did_auth.api.metrics_listener import bearer_allows, exposition, start_metrics_listener
from did_auth.api.models import (
    DidChallengeRequest,
    DidChallengeResponse,
    DidVerifyRequest,
    NonceRequest,
    NonceResponse,
    OtpConfirmRequest,
    OtpEnrollRequest,
    SiweVerifyRequest,
    TokenResponse,
)
from did_auth.api.oidc import install_oidc
from did_auth.api.openapi import install_openapi
from did_auth.api.resource_auth import access_claims
from did_auth.api.revocation_routes import install_revocation_routes
from did_auth.chain.client import ChainClient
from did_auth.errors import DidAuthError, InsufficientUserAuthentication, TemporarilyUnavailable
from did_auth.flows.did_login import DidLogin, DidRequest
from did_auth.flows.guard import RequestContext
from did_auth.flows.otp_enrolment import OtpEnrolment, OtpEnrolRequest
from did_auth.flows.siwe_login import SiweRequest
from did_auth.monitoring.audit import AuditEvent, Outcome
from did_auth.monitoring.metrics import CONTENT_TYPE, METRICS
from did_auth.oauth.discovery import discovery_document
from did_auth.policy.clients import get_client
from did_auth.services import Services, build_services
from did_auth.settings import Settings
from did_auth.tokens.issue import Grant

__all__ = ["create_app"]

_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def create_app(settings: Settings, *, services: Services | None = None) -> FastAPI:
    svc = services or build_services(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await svc.start()
        metrics_listener = None
        try:
            if settings.metrics_listen:
                metrics_listener = await start_metrics_listener(settings.metrics_listen)
            yield
        finally:
            if metrics_listener is not None:
                await metrics_listener.close()
            await svc.close()

    app = FastAPI(
        title="did-auth",
        version=__version__,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.services = svc
    install_error_handlers(app)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(RequestContextMiddleware, trusted_proxies=settings.trusted_proxies)
    audit = svc.audit

    def login_ok(ctx: RequestContext, method: str, grant: Grant) -> None:
        METRICS.logins.labels(method=method, outcome="success").inc()
        METRICS.tokens_issued.labels(grant=method).inc()
        audit.emit(
            AuditEvent.LOGIN_SUCCESS,
            Outcome.SUCCESS,
            request_id=ctx.request_id,
            client_id=grant.client_id,
            subject=grant.sub,
            ip=ctx.ip,
            method=method,
            sid=grant.sid,
            scope=grant.scope,
            amr=list(grant.amr),
            dpop_bound=grant.jkt is not None,
        )

    install_oidc(app, svc)
    install_revocation_routes(app, svc)
    discovery = discovery_document(settings)

    @app.get("/.well-known/openid-configuration")
    async def openid_configuration() -> dict[str, Any]:
        return discovery

    @app.get("/.well-known/oauth-authorization-server")
    async def oauth_metadata() -> dict[str, Any]:
        return discovery

    @app.get("/.well-known/jwks.json")
    async def jwks() -> Response:
        await svc.keys.refresh()
        return JSONResponse(svc.keys.jwks(), headers={"Cache-Control": "public, max-age=60"})

    # The SIWE login handlers are shared by the FastAPI routes below and by the hot path
    # (did_auth/api/hotpath.py), which serves the same two routes with less framework work.
    async def siwe_nonce_handler(
        ctx: RequestContext, body: NonceRequest, _dpop: list[str], _authorization: str | None
    ) -> tuple[dict[str, Any], dict[str, str]]:
        await svc.guard.nonce_request(ctx)
        client = get_client(settings, body.client_id)

        async def hold(nonce: str) -> None:  # the outstanding cap, before anything is stored
            await svc.guard.hold_nonce(ctx, client.client_id, nonce)

        nonce = await svc.nonces.issue(client.client_id, hold=hold)
        return {"nonce": nonce, "expires_in": svc.nonces.ttl}, _NO_STORE

    @app.post("/siwe/nonce", response_model=NonceResponse)
    async def siwe_nonce(request: Request, body: NonceRequest) -> Response:
        request.state.client_id = body.client_id
        payload, headers = await siwe_nonce_handler(request_context(request), body, [], None)
        return JSONResponse(payload, headers=headers)

    def token_headers() -> dict[str, str]:
        if settings.dpop_nonce:
            return {**_NO_STORE, "DPoP-Nonce": svc.dpop.new_nonce()}
        return _NO_STORE

    async def proof_preamble(
        ctx: RequestContext,
        body: SiweVerifyRequest | DidVerifyRequest,
        dpop: list[str],
        authorization: str | None,
        path: str,
    ) -> str | None:
        """What every proof endpoint does first: the per-IP budget, the client (a
        confidential client authenticates, as at the token endpoint: RFC 6749 §3.2.1), fresh
        keys, and the DPoP proof (its key's thumbprint binds the tokens)."""
        await svc.guard.verify_request(ctx)
        get_client(settings, body.client_id)
        authenticated = await svc.client_auth.authenticate(
            authorization, body.client_credentials(), settings.issuer + path
        )
        await svc.keys.refresh()
        return await svc.dpop.check(
            dpop,
            htm="POST",
            htu=settings.issuer + path,
            required=authenticated.config.require_dpop,
        )

    async def siwe_verify_handler(
        ctx: RequestContext, body: SiweVerifyRequest, dpop: list[str], authorization: str | None
    ) -> tuple[dict[str, Any], dict[str, str]]:
        jkt = await proof_preamble(ctx, body, dpop, authorization, "/siwe/verify")
        response, grant = await svc.siwe.verify(
            SiweRequest(
                client_id=body.client_id,
                message=body.message,
                signature=body.signature,
                audience=body.audience,
                scope=body.scope,
                otp=body.otp,
                jkt=jkt,
                ctx=ctx,
            )
        )
        login_ok(ctx, "siwe", grant)
        return response, token_headers()

    @app.post("/siwe/verify", response_model=TokenResponse)
    async def siwe_verify(request: Request, body: SiweVerifyRequest) -> Response:
        request.state.client_id = body.client_id
        payload, headers = await siwe_verify_handler(
            request_context(request),
            body,
            request.headers.getlist("dpop"),
            request.headers.get("authorization"),
        )
        return JSONResponse(payload, headers=headers)

    @app.post("/did/challenge", response_model=DidChallengeResponse)
    async def did_challenge(request: Request, body: DidChallengeRequest) -> Response:
        ctx = request_context(request)
        request.state.client_id = body.client_id
        await svc.guard.nonce_request(ctx, kind="challenge")
        did_login = _did(svc)

        async def hold(client_id: str, challenge: str) -> None:  # before it is stored
            await svc.guard.hold_nonce(ctx, client_id, challenge)

        result = await did_login.challenge(
            body.client_id, body.did, audience=body.audience, hold=hold
        )
        return JSONResponse(result, headers=_NO_STORE)

    @app.post("/did/verify", response_model=TokenResponse)
    async def did_verify(request: Request, body: DidVerifyRequest) -> Response:
        ctx = request_context(request)
        request.state.client_id = body.client_id
        jkt = await proof_preamble(
            ctx,
            body,
            request.headers.getlist("dpop"),
            request.headers.get("authorization"),
            "/did/verify",
        )
        response, grant = await _did(svc).verify(
            DidRequest(
                client_id=body.client_id,
                proof=body.proof,
                audience=body.audience,
                scope=body.scope,
                otp=body.otp,
                jkt=jkt,
                ctx=ctx,
            )
        )
        login_ok(request_context(request), "did", grant)
        return JSONResponse(response, headers=token_headers())

    @app.post("/token", response_model=TokenResponse)
    async def token(request: Request) -> Response:
        """RFC 6749 §3.2: did_auth.oauth.token_endpoint decides; this reads and writes."""
        form = await read_form(request)
        request.state.grant_type = form.get("grant_type")
        request.state.client_id = form.get("client_id")
        result = await svc.token_endpoint.handle(
            authorization=request.headers.get("authorization"),
            params=form,
            dpop_proofs=request.headers.getlist("dpop"),
            ctx=request_context(request),
        )
        request.state.client_id = result.client.client_id
        return JSONResponse(result.response, headers=token_headers())

    @app.post("/revoke")
    async def revoke(request: Request) -> Response:
        """RFC 7009: did_auth.oauth.revocation decides; 200 with an empty body (§2.2)."""
        form = await read_form(request)
        request.state.client_id = form.get("client_id")
        await svc.revocation.handle(
            authorization=request.headers.get("authorization"),
            params=form,
            ctx=request_context(request),
        )
        return Response(status_code=200, headers=_NO_STORE)

    @app.post("/introspect")
    async def introspect(request: Request) -> Response:
        """RFC 7662 (did_auth.oauth.introspection): the caller authenticates like a client."""
        result = await svc.introspection.handle(
            authorization=request.headers.get("authorization"), params=await read_form(request)
        )
        return JSONResponse(result, headers=_NO_STORE)

    @app.post("/otp/enroll")
    async def otp_enroll(request: Request, body: OtpEnrollRequest | None = None) -> Response:
        # Enrolling or replacing a second factor: a fresh login, the current factor, or a
        # wallet signature for re-enrolment (did_auth.flows.otp_enrolment); always audited.
        claims = await access_claims(request)
        ctx = request_context(request)
        body = body or OtpEnrollRequest()
        sub, client_id = str(claims["sub"]), str(claims.get("client_id", ""))
        request.state.client_id = client_id
        try:
            enrollment, method, replaces = await _otp_enrolment(svc).enroll(
                OtpEnrolRequest(
                    sub=sub,
                    client_id=client_id,
                    auth_time=float(claims.get("auth_time", 0)),
                    otp=body.otp,
                    siwe=body.siwe.model_dump() if body.siwe is not None else None,
                    ctx=ctx,
                )
            )
        except DidAuthError as exc:
            if isinstance(exc, InsufficientUserAuthentication) and (claims.get("cnf") or {}).get(
                "jkt"
            ):
                exc.scheme = "DPoP"  # RFC 9449 §7.1: the challenge of the scheme in use
            audit.emit(
                AuditEvent.SECOND_FACTOR_ENROLMENT, Outcome.DENIED, reason=exc.reason,
                request_id=ctx.request_id, client_id=client_id, subject=sub, ip=ctx.ip,
                method="wallet_signature" if body.siwe is not None else
                ("current_otp" if body.otp is not None else "fresh_login"),
            )
            raise
        audit.emit(
            AuditEvent.SECOND_FACTOR_ENROLMENT, Outcome.SUCCESS, reason=method,
            request_id=ctx.request_id, client_id=client_id, subject=sub, ip=ctx.ip,
            method=method, replaces=replaces,
        )
        return JSONResponse(
            {"secret": enrollment.secret, "otpauth_uri": enrollment.uri, "replaces": replaces},
            headers=_NO_STORE,
        )

    @app.post("/otp/confirm")
    async def otp_confirm(request: Request, body: OtpConfirmRequest) -> Response:
        claims = await access_claims(request)
        ctx = request_context(request)
        confirmed = await svc.otp.confirm(str(claims["sub"]), body.otp)
        audit.emit(
            AuditEvent.SECOND_FACTOR_ENROLLED, Outcome.SUCCESS, reason=confirmed.method,
            request_id=ctx.request_id, client_id=claims.get("client_id"),
            subject=str(claims["sub"]), ip=ctx.ip, replaced=confirmed.replaced,
        )
        return JSONResponse({"enrolled": True, "replaced": confirmed.replaced}, headers=_NO_STORE)

    @app.get("/revocations")
    async def revocations(since: str | None = None, limit: str | None = None) -> Response:
        # Both parameters are validated by the feed itself (400 before any store call).
        return JSONResponse(await svc.revocations.feed(since, limit), headers=_NO_STORE)

    @app.get("/metrics")
    async def metrics(request: Request) -> Response:
        # Open only in development (metrics_public); else a bearer token (RFC 6750 §2.1)
        # or not here at all (metrics_listen: its own listener).
        allowed = bearer_allows(settings, request.headers.get("authorization"))
        if allowed is None:
            raise StarletteHTTPException(404)
        if not allowed:
            return JSONResponse(
                {"error": "invalid_token", "error_description": "/metrics needs its bearer token"},
                status_code=401,
                headers={"WWW-Authenticate": 'Bearer error="invalid_token"', **_NO_STORE},
            )
        return Response(exposition(), media_type=CONTENT_TYPE)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz() -> Response:
        """Ready when Redis answers and every configured chain's RPC answers with a head
        block fresh enough (ChainConfig.max_head_age)."""
        report: dict[str, Any] = {}
        ready = True
        try:
            await svc.store.ping()
            report["store"] = "ok"
        except TemporarilyUnavailable:
            report["store"] = "down"
            ready = False
        chains: dict[str, str] = {}
        for chain_id, client in svc.chains.clients.items():
            chains[str(chain_id)] = await _chain_health(client, svc.clock.now())
            ready = ready and chains[str(chain_id)] == "ok"
        report["chains"] = chains
        report["status"] = "ready" if ready else "unavailable"
        return JSONResponse(report, status_code=200 if ready else 503, headers=_NO_STORE)

    # -- issue 9 hot path: the two SIWE login routes skip FastAPI's per-request machinery
    # (same handlers as the routes above; see did_auth/api/hotpath.py). Appended last, so it
    # is the innermost of the app's own middlewares: context, metrics, body limit still apply.
    routes = {getattr(r, "path", ""): r for r in app.routes}
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
        )
    )
    install_openapi(app)
    return app


def _otp_enrolment(svc: Services) -> OtpEnrolment:
    if svc.otp_enrolment is None:  # pragma: no cover - always wired by build_services
        raise TemporarilyUnavailable("OTP enrolment is not available", reason="otp_unwired")
    return svc.otp_enrolment


def _did(svc: Services) -> DidLogin:
    if svc.did is None:  # pragma: no cover - always wired by build_services
        raise TemporarilyUnavailable("DID logins are not available", reason="did_unwired")
    return svc.did


async def _chain_health(client: ChainClient, now: float) -> str:
    max_age = client.config.max_head_age

    def latest(block: str) -> list[tuple[str, list[Any]]]:
        return [("eth_getBlockByNumber", [block, False])]

    try:
        (head,) = await client.read(latest)
    except TemporarilyUnavailable:
        return "down"
    if not isinstance(head, dict):
        return "down"
    if max_age is not None and now - int(head.get("timestamp", "0x0"), 16) > max_age:
        return "stale"
    return "ok"


def app_from_env() -> Any:
    """uvicorn factory for `--workers N`: reads the config path from DID_AUTH_CONFIG (a
    worker that fails to start says why in one line, did_auth.api.startup_guard)."""
    from did_auth.api.startup_guard import StartupGuard
    from did_auth.settings import load_settings

    path = os.environ.get("DID_AUTH_CONFIG") or None
    return StartupGuard(create_app(load_settings(path)))
