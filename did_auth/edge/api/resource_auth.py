"""The access token of a request to one of did-auth's own protected resources (`/userinfo`,
`/otp/*`): read from the request here, checked by `did_auth.core.oauth.protected_resource`, and
failures answered with their `WWW-Authenticate` challenge by `did_auth.edge.api.errors`."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from did_auth.core.oauth.protected_resource import Audience, ResourceRequest
from did_auth.edge.api.deps import get_services

__all__ = ["Audience", "access_claims"]


async def access_claims(request: Request, audience: Audience = Audience.SOLE) -> dict[str, Any]:
    """The claims of the request's live access token for did-auth (Bearer, or DPoP with its
    proof): `aud` exactly the issuer, or (`Audience.INCLUDES`) containing it."""
    svc = get_services(request)
    return await svc.resource.claims(
        ResourceRequest(
            authorization=request.headers.get("authorization"),
            dpop_proofs=request.headers.getlist("dpop"),
            htm=request.method,
            # RFC 9449 §4.3: htu from the configured issuer URL, never from Host headers.
            htu=svc.settings.issuer + request.url.path,
        ),
        audience,
    )
