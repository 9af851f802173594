"""did-auth's own protected resources (`/userinfo`, `/otp/*`): one access-token check.

The request carries one of our access tokens as `Authorization: Bearer <token>` (RFC 6750
§2.1) or, DPoP-bound, as `Authorization: DPoP <token>` with a `DPoP` proof (RFC 9449 §7.1).
Every failure is a `ResourceAccessError` naming the scheme the client used, which the HTTP
edge (`did_auth.edge.api.errors`) turns into the matching `WWW-Authenticate` challenge, once.
Pure: no web framework here.

The token must be issued for did-auth itself (RFC 9068 §4 `aud`): its identifier is the
issuer URL. A token for an API (`trading-api`) is that API's, and an API must not be able
to act on the user's account at did-auth with it (e.g. enrol its own second factor).
`Audience.SOLE`: `aud` is exactly the issuer (the `/otp/*` routes); `Audience.INCLUDES`:
`aud` contains the issuer (`/userinfo`, which also takes the OpenID Connect code flow's
access tokens, `aud: [<api>, <issuer>]`).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final

from did_auth.core.errors import InvalidDpopProof, InvalidToken, ResourceAccessError, UseDpopNonce
from did_auth.core.flows.dpop_gate import DpopGate
from did_auth.core.tokens.local_check import LocalTokenCheck

__all__ = ["Audience", "ProtectedResource", "ResourceRequest"]

# RFC 6750 §2.1 b64token / RFC 9449 §7.1 token68: 1*( ALPHA / DIGIT / "-" / "." / "_" /
# "~" / "+" / "/" ) *"="
_TOKEN68: Final = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
_SCHEMES: Final = {"bearer": "Bearer", "dpop": "DPoP"}


class Audience(enum.Enum):
    """Which `aud` a resource accepts: exactly the issuer, or any audience list with it."""

    SOLE = "sole"
    INCLUDES = "includes"


@dataclass(frozen=True)
class ResourceRequest:
    authorization: str | None  # the `Authorization` header
    dpop_proofs: list[str]  # the `DPoP` header values
    htm: str  # the request's method and URL (without query), for the DPoP proof
    htu: str


def credentials(authorization: str | None) -> tuple[str, str] | None:
    """(scheme, token) from `Authorization: Bearer|DPoP <token>` (scheme case-insensitive,
    RFC 7235 §2.1), or None when the request carries no credentials of either scheme."""
    scheme, _, token = (authorization or "").strip().partition(" ")
    name = _SCHEMES.get(scheme.lower())
    token = token.strip()
    if name is None or not token:
        return None
    return name, token


class ProtectedResource:
    def __init__(
        self,
        *,
        local: LocalTokenCheck,
        dpop: DpopGate,
        refresh_keys: Callable[[], Awaitable[None]],
        issuer: str,
    ) -> None:
        self._issuer = issuer
        self._local = local
        self._dpop = dpop
        self._refresh_keys = refresh_keys

    async def claims(
        self, request: ResourceRequest, audience: Audience = Audience.SOLE
    ) -> dict[str, Any]:
        """The claims of the live access token for did-auth (`audience`) the request
        carries, or ResourceAccessError (a store outage stays TemporarilyUnavailable: 503,
        never a challenge)."""
        found = credentials(request.authorization)
        if found is None:
            # RFC 6750 §3.1: "If the request lacks any authentication information (e.g., the
            # client was unaware that authentication is necessary or attempted using an
            # unsupported authentication method), the resource server SHOULD NOT include an
            # error code or other error information."
            raise ResourceAccessError(
                "an access token is required", error=None, scheme=None, algs=self._dpop.algs
            )
        scheme, token = found
        try:
            return await self._check(scheme, token, request, audience)
        except (InvalidToken, InvalidDpopProof, UseDpopNonce) as exc:
            raise ResourceAccessError(
                exc.description,
                error=exc.code,
                scheme=scheme,
                algs=self._dpop.algs,
                nonce=exc.nonce if isinstance(exc, UseDpopNonce) else None,
                reason=exc.reason,
            ) from None

    def _check_audience(self, aud: object, audience: Audience) -> None:
        # RFC 9068 §4: "The resource server MUST validate that the "aud" claim contains a
        # resource indicator value corresponding to an identifier the resource server
        # expects for itself. The JWT access token MUST be rejected if "aud" does not
        # contain a resource indicator of the current resource server as a valid
        # audience." ... "in case of any failure in the validation checks listed above,
        # the authorization server response MUST include the error code "invalid_token"".
        if audience is Audience.SOLE:
            ok = aud == self._issuer or aud == [self._issuer]
        else:
            ok = aud == self._issuer or (
                isinstance(aud, list) and all(isinstance(a, str) for a in aud)
                and self._issuer in aud
            )
        if not ok:
            raise InvalidToken(
                f"the access token is not for this server: log in with audience={self._issuer}",
                reason="aud",
            )

    async def _check(
        self, scheme: str, token: str, request: ResourceRequest, audience: Audience
    ) -> dict[str, Any]:
        if not _TOKEN68.fullmatch(token):
            raise InvalidToken("the access token is malformed", reason="token_malformed")
        await self._refresh_keys()
        claims = await self._local.active_claims(token)
        if claims is None:
            raise InvalidToken("the access token is invalid, expired or revoked")
        self._check_audience(claims.get("aud"), audience)
        cnf = claims.get("cnf")
        jkt = cnf.get("jkt") if isinstance(cnf, dict) else None
        if jkt is None:
            if scheme == "DPoP":
                # RFC 9449 §7.1: the DPoP scheme presents a DPoP-bound access token.
                raise InvalidToken("the access token is not DPoP-bound", reason="not_dpop_bound")
            return claims
        if scheme == "Bearer":
            # RFC 9449 §7.2: "such a protected resource MUST reject a DPoP-bound access
            # token received as a bearer token".
            raise InvalidToken(
                "DPoP-bound token presented as a bearer token", reason="dpop_bound_as_bearer"
            )
        # RFC 9449 §7.1: the resource server "MUST check that a DPoP proof was also received
        # in the DPoP header field of the HTTP request, check the DPoP proof according to the
        # rules in Section 4.3, and check that the public key of the DPoP proof matches the
        # public key to which the access token is bound".
        await self._dpop.check_resource(
            request.dpop_proofs,
            htm=request.htm,
            htu=request.htu,
            access_token=token,
            jkt=str(jkt),
        )
        return claims
