"""HTTP front of the OIDC code flow and the hosted sign-in page.

| route                         | what                                                       |
| ----------------------------- | ---------------------------------------------------------- |
| GET/POST `/authorize`         | validate (OIDC Core §3.1.2), then the sign-in page         |
| POST `/authorize/complete`    | `{request_id, message, signature}` -> `{"redirect": url}`  |
| POST `/authorize/cancel`      | `{request_id}` -> `{"redirect": url?error=access_denied}`   |
| GET/POST `/userinfo`          | Bearer (or DPoP) access token -> `{"sub", ...}`            |
| GET `/signin`                 | hosted page for plain dApp logins (client_id, scope, ...)  |

The decisions are `did_auth.core.flows.oidc` (authorize, cancel, the sign-in page) and the login
use case (`did_auth.core.flows.login.Logins.authorization_code`); the code grant itself is a
handler of the token endpoint (`did_auth.core.oauth.grants.authorization_code`); discovery is
`did_auth.core.oauth.discovery`.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from did_auth.core.flows.login import AuthorizationCodeLogin
from did_auth.core.flows.oidc import AuthorizePageError, AuthorizeRedirectError, userinfo_claims
from did_auth.edge.api.context import request_context
from did_auth.edge.api.deps import NO_STORE, ServicesDep
from did_auth.edge.api.pages import error_page, page_response
from did_auth.edge.api.resource_auth import Audience, access_claims
from did_auth.services import Services

__all__ = ["CancelRequest", "CompleteRequest", "router"]

router = APIRouter()


def _params(items: list[tuple[str, str]]) -> tuple[dict[str, str], frozenset[str]]:
    params: dict[str, str] = {}
    repeated: set[str] = set()
    for key, value in items:
        if key in params:
            repeated.add(key)
        params[key] = value
    return params, frozenset(repeated)


async def _authorize(svc: Services, request: Request, items: list[tuple[str, str]]) -> Response:
    # Each request parks state for REQUEST_TTL: budgeted per IP like DID challenges.
    await svc.guard.nonce_request(request_context(request), kind="challenge")
    params, repeated = _params(items)
    try:
        _, page = await svc.oidc.authorize(params, repeated)
    except AuthorizePageError as exc:
        return error_page(exc.title, exc.message)
    except AuthorizeRedirectError as exc:
        return RedirectResponse(exc.location, status_code=302, headers=NO_STORE)
    return page_response(page)


@router.get("/authorize", include_in_schema=True)
async def authorize_get(request: Request, svc: ServicesDep) -> Response:
    """OIDC Core §3.1.2.1: the authorization request as query parameters."""
    return await _authorize(svc, request, request.query_params.multi_items())


@router.post("/authorize")
async def authorize_post(request: Request, svc: ServicesDep) -> Response:
    """OIDC Core §3.1.2.1: the same request form-encoded (HTTP POST is also supported)."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    try:
        if ctype != "application/x-www-form-urlencoded":
            raise ValueError(ctype)
        items = parse_qsl((await request.body()).decode("utf-8"), keep_blank_values=True)
    except (UnicodeDecodeError, ValueError):
        # Shown, not redirected: there is no verified redirect URI yet.
        return error_page("Invalid request", "Expected a form-encoded authorization request.")
    return await _authorize(svc, request, items)


class CompleteRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    request_id: str = Field(max_length=128)
    message: str = Field(max_length=16 * 1024)
    signature: str = Field(max_length=2 + 2 * 16 * 1024)
    # A step-up scope in the parked request needs its second factor here (TOTP, RFC 6238).
    otp: str | None = Field(default=None, max_length=16)


class CancelRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    request_id: str = Field(max_length=128)


@router.post("/authorize/complete")
async def authorize_complete(request: Request, body: CompleteRequest, svc: ServicesDep) -> Response:
    url, grant = await svc.login.authorization_code(
        AuthorizationCodeLogin(
            request_id=body.request_id,
            message=body.message,
            signature=body.signature,
            otp=body.otp,
            ctx=request_context(request),
        )
    )
    request.state.client_id = grant.client_id
    return JSONResponse({"redirect": url}, headers=NO_STORE)


@router.post("/authorize/cancel")
async def authorize_cancel(body: CancelRequest, svc: ServicesDep) -> Response:
    url = await svc.oidc.cancel(body.request_id)
    return JSONResponse({"redirect": url}, headers=NO_STORE)


async def _userinfo(request: Request) -> Response:
    # OIDC Core §5.3.1 / RFC 6750 / RFC 9449 §7: the shared protected-resource check; its
    # failures are answered with their challenge by did_auth.edge.api.errors.
    # OIDC Core §5.3: the code flow's access tokens (`aud: [<api>, <issuer>]`) or a token
    # for did-auth itself; RFC 9068 §4: never a token for another audience only.
    info = userinfo_claims(await access_claims(request, Audience.INCLUDES))
    return JSONResponse(info, headers=NO_STORE)


@router.get("/userinfo")
async def userinfo_get(request: Request) -> Response:
    return await _userinfo(request)


@router.post("/userinfo")
async def userinfo_post(request: Request) -> Response:
    return await _userinfo(request)


@router.get("/signin")
async def signin(request: Request, svc: ServicesDep) -> Response:
    params, repeated = _params(request.query_params.multi_items())
    if repeated:
        return error_page("Invalid request", f"Parameter repeated: {sorted(repeated)[0]}.")
    try:
        page = svc.oidc.signin_page(params)
    except AuthorizePageError as exc:
        return error_page(exc.title, exc.message)
    return page_response(page)
