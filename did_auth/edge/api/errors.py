"""The one place where exceptions become HTTP responses `{"error", "error_description"}`."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from did_auth.adapters.monitoring.audit import AuditEvent, Outcome
from did_auth.adapters.monitoring.metrics import METRICS
from did_auth.core.errors import (
    DidAuthError,
    InsufficientUserAuthentication,
    InvalidClient,
    RateLimited,
    ResourceAccessError,
    TemporarilyUnavailable,
    UseDpopNonce,
)
from did_auth.core.policy.ratelimit import RateLimitExceeded
from did_auth.edge.api.context import request_context

__all__ = ["error_response", "install_error_handlers", "resource_challenge"]

log = logging.getLogger("did_auth.edge.api")

_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def error_response(exc: DidAuthError) -> JSONResponse:
    headers = dict(_NO_STORE)
    if isinstance(exc, RateLimitExceeded):
        headers.update(exc.headers)
    elif isinstance(exc, RateLimited):
        headers["Retry-After"] = str(exc.retry_after)
    if isinstance(exc, UseDpopNonce):
        headers["DPoP-Nonce"] = exc.nonce
    if isinstance(exc, InsufficientUserAuthentication):
        # RFC 9470 §3: the challenge names the error and the max_age the resource needs.
        headers["WWW-Authenticate"] = (
            f'{exc.scheme} error="insufficient_user_authentication", '
            f'error_description="{_quoted(exc.description)}", max_age="{exc.max_age}"'
        )
    if isinstance(exc, InvalidClient):
        # RFC 6749 §5.2: "If the client attempted to authenticate via the Authorization
        # request header field, the authorization server MUST respond with an HTTP 401
        # (Unauthorized) status code and include the WWW-Authenticate response header field
        # matching the authentication scheme used by the client" (exc.basic). Every other
        # client-authentication failure is a 401 too, and RFC 7235 §3.1 wants a challenge on
        # every 401: the one scheme a client can answer in a header.
        headers["WWW-Authenticate"] = 'Basic realm="did-auth"'
    if isinstance(exc, ResourceAccessError):
        headers["WWW-Authenticate"] = resource_challenge(exc)
        if exc.nonce is not None:
            headers["DPoP-Nonce"] = exc.nonce  # RFC 9449 §9
    return JSONResponse(exc.to_dict(), status_code=exc.status, headers=headers)


def _quoted(text: str) -> str:
    """RFC 6750 §3: error_description is %x20-21 / %x23-5B / %x5D-7E (no quote, no
    backslash), inside a quoted-string."""
    return "".join(c if " " <= c <= "~" and c not in '"\\' else "'" for c in text)


def resource_challenge(exc: ResourceAccessError) -> str:
    """The `WWW-Authenticate` value for a refused request to a protected resource.

    RFC 6750 §3 for the Bearer scheme; RFC 9449 §7.1 for the DPoP scheme, whose challenge
    carries `algs` ("a space-delimited list of the JWS alg values that the resource server
    supports"). The challenge is in the scheme the client used; without credentials, no
    error code (RFC 6750 §3.1) and both schemes, either of which the client may answer.
    """
    algs = f'algs="{" ".join(exc.algs)}"'
    if exc.scheme is None or exc.challenge_error is None:
        return f'Bearer realm="did-auth", DPoP {algs}'
    params = f'error="{exc.challenge_error}", error_description="{_quoted(exc.description)}"'
    if exc.scheme == "DPoP":
        return f"DPoP {params}, {algs}"
    return f"Bearer {params}"


def _validation_text(exc: RequestValidationError) -> str:
    errs = exc.errors()
    if not errs:
        return "malformed request"
    e = errs[0]
    where = ".".join(str(p) for p in e.get("loc", ()) if p != "body") or "body"
    if e.get("type") == "json_invalid":
        return "request body is not valid JSON"
    if e.get("type") == "missing":
        return f"missing field: {where}"
    return f"invalid field {where}: {e.get('msg', 'invalid')}"


_ANOMALIES = {
    "nonce_replay": (AuditEvent.REPLAY_DETECTED, "replay"),
    "dpop_replay": (AuditEvent.REPLAY_DETECTED, "replay"),
    "challenge_replay": (AuditEvent.REPLAY_DETECTED, "replay"),
    "refresh_reuse": (AuditEvent.REFRESH_REUSE, "refresh_reuse"),
    "session_revoked": (AuditEvent.REVOKED_USE, "revoked_use"),
    "revoked": (AuditEvent.REVOKED_USE, "revoked_use"),
    "suspended": (AuditEvent.REVOKED_USE, "revoked_use"),
}


def _observe_failure(request: Request, exc: DidAuthError) -> None:
    """Audit and count a refused request (one line per security decision)."""
    services = getattr(request.app.state, "services", None)
    audit = getattr(services, "audit", None)
    ctx = request_context(request)
    client_id = getattr(request.state, "client_id", None)
    path = request.url.path
    common = {
        "reason": exc.reason,
        "request_id": ctx.request_id,
        "client_id": client_id,
        "ip": ctx.ip,
        "status": exc.status,
    }
    if isinstance(exc, TemporarilyUnavailable) and exc.reason == "redis_down":
        METRICS.redis_errors.inc()
    if audit is None:
        return
    if isinstance(exc, RateLimited):
        bucket = exc.decision.policy if isinstance(exc, RateLimitExceeded) else exc.reason
        METRICS.rate_limited.labels(bucket=bucket).inc()
        audit.emit(AuditEvent.RATE_LIMITED, Outcome.DENIED, route=path, **common)
    anomaly = _ANOMALIES.get(exc.reason)
    if anomaly is not None:
        METRICS.anomalies.labels(kind=anomaly[1]).inc()
        audit.emit(anomaly[0], Outcome.DETECTED, route=path, **common)
    # A refused login is counted and audited by the login use case (did_auth.core.flows.login).
    if path == "/token":
        grant = getattr(request.state, "grant_type", None)
        event = AuditEvent.TOKEN_REFRESHED if grant == "refresh_token" else AuditEvent.TOKEN_ISSUED
        audit.emit(event, Outcome.FAILURE, grant_type=grant, **common)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(DidAuthError)
    async def _did_auth(request: Request, exc: DidAuthError) -> Response:
        _observe_failure(request, exc)
        if exc.status >= 500 and exc.code != "temporarily_unavailable":
            log.error("internal error: %s", exc.reason)
            return JSONResponse(
                {"error": "server_error", "error_description": "internal error"}, status_code=500
            )
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> Response:
        return JSONResponse(
            {"error": "invalid_request", "error_description": _validation_text(exc)},
            status_code=400,
            headers=_NO_STORE,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> Response:
        code = "invalid_request" if exc.status_code < 500 else "server_error"
        if exc.status_code == 404:
            code = "not_found"
        return JSONResponse(
            {"error": code, "error_description": str(exc.detail)},
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> Response:
        log.exception("unhandled error")
        return JSONResponse(
            {"error": "server_error", "error_description": "internal error"}, status_code=500
        )
