"""FastAPI guards for routes protected by did-auth access tokens.

    guard = TokenGuard(verifier, realm="trading-api")
    guard.install(app)          # JSON error bodies + lets `require_scopes(...)` find the guard

    @app.get("/account")
    async def account(token: VerifiedToken = Depends(guard.require_scopes("account:read"))):
        ...

    @app.post("/withdrawals")
    async def withdraw(token: VerifiedToken = Depends(require_scopes("wallet:withdraw",
                                                                      step_up=True))):
        ...

The dependency reads `Authorization: Bearer|DPoP <token>`, the `DPoP` header, the method
and the URL of the request, and answers failures with RFC 6750 §3 / RFC 9449 §7.1 /
RFC 9470 §3 challenges:

    401  WWW-Authenticate: Bearer realm="...", DPoP algs="ES256 EdDSA"      (no credentials)
    401  WWW-Authenticate: Bearer error="invalid_token", error_description="...", DPoP algs=..
    401  WWW-Authenticate: DPoP error="invalid_dpop_proof", error_description="...", algs=".."
    401  WWW-Authenticate: Bearer error="insufficient_user_authentication", max_age="300", ..
    403  WWW-Authenticate: Bearer error="insufficient_scope", scope="trade:write", ...
    400  WWW-Authenticate: Bearer error="invalid_request", ...
    503  {"error": "temporarily_unavailable"} with Retry-After (JWKS / revocation feed down)

The challenge scheme is the one the client used (`Bearer` or `DPoP`), as RFC 9449 §7.2
recommends; Bearer challenges also advertise `DPoP algs=...`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from did_auth_verifier.dpop import NonceCheck, normalize_htu
from did_auth_verifier.errors import (
    InsufficientScope,
    InsufficientUserAuthentication,
    InvalidDpopProof,
    InvalidRequest,
    InvalidToken,
    TemporarilyUnavailable,
    UseDpopNonce,
    VerifierError,
)
from did_auth_verifier.tokens import TokenVerifier, VerifiedToken
from did_auth_verifier.withdrawals import Withdrawal, WithdrawalCheck

__all__ = ["AuthError", "TokenGuard", "require_scopes"]

log = logging.getLogger("did_auth_verifier.fastapi")

_STATE_KEY = "did_auth_token_guard"
# RFC 9449 §7.1 / RFC 6750 §2.1: credentials are a token68 / b64token.
_TOKEN68 = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
# RFC 6750 §3: error_description and scope values are limited to
# %x20-21 / %x23-5B / %x5D-7E (no '"' and no '\').
_UNSAFE_PARAM = re.compile(r"[^\x20\x21\x23-\x5b\x5d-\x7e]")

Dependency = Callable[[Request], Awaitable[VerifiedToken]]


def _param(value: str, limit: int = 200) -> str:
    return _UNSAFE_PARAM.sub("?", value)[:limit]


class AuthError(HTTPException):
    """An HTTP error with an OAuth error body; `TokenGuard.install` renders it as JSON."""

    def __init__(
        self,
        status_code: int,
        error: str | None,
        description: str = "",
        headers: dict[str, str] | None = None,
    ) -> None:
        body: dict[str, str] = {}
        if error:
            body["error"] = error
            if description:
                body["error_description"] = description
        super().__init__(status_code=status_code, detail=body or None, headers=headers)
        self.error = error
        self.description = description


class TokenGuard:
    """Builds FastAPI dependencies that verify the request's access token.

    `public_url` (e.g. "https://api.example"): the URL clients use for this API; the DPoP
    `htu` a proof must carry is `public_url` + the request path. Set it whenever the API is
    reached through a proxy or under a name. Without it the origin is the address the server
    socket is bound to (ASGI `scope["server"]`, e.g. `http://127.0.0.1:9000`) and the ASGI
    scheme: never the `Host` or `X-Forwarded-*` headers, which the client chooses (a proof
    made for another site, replayed with `Host: that-site`, must not pass).
    `step_up_max_age`: default freshness for `step_up=True` routes. `dpop_nonce`: nonce
    demanded in DPoP proofs (string or predicate), if any. `offload=True` always runs
    verification in the thread pool (use it when a revocation view or replay cache does
    blocking I/O); by default verification runs inline and is offloaded only when a JWKS
    fetch or the first read of the revocation feed is due.
    """

    def __init__(
        self,
        verifier: TokenVerifier,
        *,
        realm: str | None = None,
        public_url: str | None = None,
        step_up_max_age: float = 300.0,
        dpop_nonce: NonceCheck | None = None,
        offload: bool = False,
    ) -> None:
        self.verifier = verifier
        self.realm = realm if realm is not None else verifier.audience
        self.public_url = _check_public_url(public_url) if public_url else None
        self.step_up_max_age = float(step_up_max_age)
        self.dpop_nonce = dpop_nonce
        self.offload = offload
        self._algs = " ".join(verifier.dpop.allowed_algs)

    # -- wiring ---------------------------------------------------------------------------

    def install(self, app: FastAPI) -> None:
        """Register this guard on `app` (for `require_scopes`) and the JSON error handler."""
        setattr(app.state, _STATE_KEY, self)
        app.add_exception_handler(AuthError, _auth_error_handler)

    def require_scopes(
        self, *scopes: str, step_up: bool = False, max_age: float | None = None
    ) -> Dependency:
        """A dependency returning the `VerifiedToken` when it carries every scope in `scopes`.

        `step_up=True` also requires `"otp"` in `amr` and `auth_time` within `max_age`
        seconds (default: the guard's `step_up_max_age`), else 401
        `insufficient_user_authentication` (RFC 9470).
        """
        required = tuple(scopes)
        age = (max_age if max_age is not None else self.step_up_max_age) if step_up else None

        async def dependency(request: Request) -> VerifiedToken:
            return await self.authenticate(request, required, step_up_max_age=age)

        return dependency

    # -- the check ------------------------------------------------------------------------

    def request_url(self, request: Request) -> str:
        """The URI of this request for DPoP `htu` (no query): configured origin + path.

        RFC 9449 §4.3 ¶9: "The htu claim matches the HTTP URI value for the HTTP request in
        which the JWT was received". The origin part is this API's, from configuration
        (`public_url`) or from the listening socket, never from request headers: a `Host` or
        `X-Forwarded-Host` that no trusted proxy set would let a proof made for any other
        site (e.g. a phishing API the victim's client signed proofs for) pass here.
        """
        raw_path = request.scope.get("raw_path")
        if isinstance(raw_path, bytes | bytearray) and raw_path:
            # Some servers (and httpx's ASGI transport) include the query in raw_path.
            path = bytes(raw_path).split(b"?", 1)[0].decode("latin-1")
        else:
            path = request.url.path
        if self.public_url is not None:
            return self.public_url + path
        server = request.scope.get("server")
        scheme = request.scope.get("scheme", "http")
        if not server or not isinstance(server[0], str) or not server[0]:
            raise InvalidDpopProof(
                "this API cannot tell its own URL (no public_url configured)",
                reason="dpop_htu",
            )
        host = f"[{server[0]}]" if ":" in server[0] else server[0]
        port = f":{int(server[1])}" if server[1] is not None else ""
        return f"{scheme}://{host}{port}{path}"

    async def authenticate(
        self,
        request: Request,
        scopes: tuple[str, ...] = (),
        *,
        step_up_max_age: float | None = None,
    ) -> VerifiedToken:
        authorization = request.headers.getlist("authorization")
        if not authorization:
            # RFC 6750 §3.1: "If the request lacks any authentication information [...], the
            # resource server SHOULD NOT include an error code or other error information."
            raise AuthError(401, None, headers={"WWW-Authenticate": self._bare_challenge()})
        if len(authorization) > 1:
            raise self._error(
                InvalidRequest("multiple Authorization headers", reason="multiple_auth"),
                "bearer",
            )
        scheme, _, credentials = authorization[0].partition(" ")
        scheme_l = scheme.lower()
        credentials = credentials.lstrip(" ")
        if scheme_l not in ("bearer", "dpop"):
            raise AuthError(401, None, headers={"WWW-Authenticate": self._bare_challenge()})
        if not credentials:
            raise self._error(InvalidRequest("missing access token", reason="no_token"), scheme_l)
        proofs = request.headers.getlist("dpop")
        if len(proofs) > 1:
            # RFC 9449 §4.3 ¶1: "There is not more than one DPoP HTTP request header field."
            raise self._error(
                InvalidDpopProof("more than one DPoP header", reason="dpop_multiple"), "dpop"
            )
        if _TOKEN68.fullmatch(credentials) is None:
            raise self._error(InvalidToken("malformed token", reason="malformed"), scheme_l)
        proof = proofs[0] if proofs else None
        try:
            htu = self.request_url(request) if proof is not None else None
        except VerifierError as exc:
            raise self._error(exc, scheme_l) from None
        verifier = self.verifier

        def run() -> VerifiedToken:
            return verifier.verify(
                credentials,
                required_scopes=scopes,
                dpop_proof=proof,
                htm=request.method,
                htu=htu,
                scheme=scheme,
                dpop_nonce=self.dpop_nonce,
                step_up_max_age=step_up_max_age,
            )

        try:
            if self.offload or verifier.would_block(credentials):
                return await run_in_threadpool(run)
            return run()
        except VerifierError as exc:
            log.info(
                "access denied: %s (%s) %s %r",
                exc.code,
                exc.reason,
                request.method,
                request.url.path,
            )
            raise self._error(exc, scheme_l) from None

    async def check_withdrawal(
        self, token: VerifiedToken, check: WithdrawalCheck, request: Withdrawal
    ) -> Mapping[str, object]:
        """`check.check(token, request)` (exact match with the token's withdrawal details,
        then single use), refusals answered as the guard's other failures: 403
        `insufficient_scope` or 401 `invalid_token` with a `WWW-Authenticate` challenge in
        the scheme the token came with (RFC 6750 §3, RFC 9449 §7.1)."""
        try:
            if check.blocking:
                return await run_in_threadpool(check.check, token, request)
            return check.check(token, request)
        except VerifierError as exc:
            log.info("withdrawal refused: %s (%s)", exc.code, exc.reason)
            raise self._error(exc, token.token_type.lower()) from None

    # -- challenges -----------------------------------------------------------------------

    def _bare_challenge(self) -> str:
        return f'Bearer realm="{_param(self.realm)}", DPoP algs="{self._algs}"'

    def _challenge(self, scheme_l: str, **params: str) -> str:
        parts = [f'realm="{_param(self.realm)}"']
        parts += [f'{name}="{_param(value)}"' for name, value in params.items()]
        if scheme_l == "dpop":
            parts.append(f'algs="{self._algs}"')
            return "DPoP " + ", ".join(parts)
        return "Bearer " + ", ".join(parts) + f', DPoP algs="{self._algs}"'

    def _error(self, exc: VerifierError, scheme_l: str) -> AuthError:
        description = _param(exc.description)
        if isinstance(exc, TemporarilyUnavailable):
            return AuthError(503, exc.code, description, headers={"Retry-After": "5"})
        if isinstance(exc, InsufficientScope):
            scope = " ".join(exc.required_scopes)
            header = self._challenge(
                scheme_l, error=exc.code, error_description=description, scope=scope
            )
            return AuthError(403, exc.code, description, headers={"WWW-Authenticate": header})
        if isinstance(exc, InsufficientUserAuthentication):
            params = {"error": exc.code, "error_description": description}
            if exc.max_age is not None:
                params["max_age"] = str(exc.max_age)
            header = self._challenge(scheme_l, **params)
            return AuthError(401, exc.code, description, headers={"WWW-Authenticate": header})
        if isinstance(exc, UseDpopNonce):
            # RFC 9449 §9: 401 with `WWW-Authenticate: DPoP error="use_dpop_nonce"` and a
            # `DPoP-Nonce` header.
            headers = {
                "WWW-Authenticate": self._challenge(
                    "dpop", error=exc.code, error_description=description
                )
            }
            if exc.nonce:
                headers["DPoP-Nonce"] = exc.nonce
            return AuthError(401, exc.code, description, headers=headers)
        if isinstance(exc, InvalidDpopProof):
            # RFC 9449 §7.1: "invalid_dpop_proof is used to indicate that the DPoP proof
            # itself was deemed invalid"; the challenge scheme is DPoP.
            header = self._challenge("dpop", error=exc.code, error_description=description)
            return AuthError(401, exc.code, description, headers={"WWW-Authenticate": header})
        if isinstance(exc, InvalidRequest):
            header = self._challenge(scheme_l, error=exc.code, error_description=description)
            return AuthError(400, exc.code, description, headers={"WWW-Authenticate": header})
        if exc.status == 401:
            header = self._challenge(scheme_l, error=exc.code, error_description=description)
            return AuthError(401, exc.code, description, headers={"WWW-Authenticate": header})
        status = exc.status if 400 <= exc.status < 600 else 500
        return AuthError(status, exc.code, description)


def _check_public_url(url: str) -> str:
    """`public_url` as an origin (plus an optional path prefix), without a trailing slash."""
    parts = urlsplit(url)
    if parts.query or parts.fragment:
        raise ValueError("public_url must not have a query or fragment")
    try:
        normalize_htu(url)  # http(s), a host, no userinfo, a valid port
    except ValueError as exc:
        raise ValueError(f"invalid public_url {url!r}: {exc}") from None
    return url.rstrip("/")


def require_scopes(*scopes: str, step_up: bool = False, max_age: float | None = None) -> Dependency:
    """Like `TokenGuard.require_scopes`, using the guard registered by `TokenGuard.install`."""
    required = tuple(scopes)

    async def dependency(request: Request) -> VerifiedToken:
        guard = getattr(request.app.state, _STATE_KEY, None)
        if not isinstance(guard, TokenGuard):
            raise RuntimeError("no TokenGuard installed on this app; call guard.install(app)")
        age = (max_age if max_age is not None else guard.step_up_max_age) if step_up else None
        return await guard.authenticate(request, required, step_up_max_age=age)

    return dependency


async def _auth_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AuthError)
    content: Any = exc.detail if isinstance(exc.detail, dict) else {}
    return JSONResponse(content, status_code=exc.status_code, headers=exc.headers)
