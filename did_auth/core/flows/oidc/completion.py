"""The authorization code's issuance (`POST /authorize/complete`, RFC 6749 §4.1.2) and the
user's refusal (`POST /authorize/cancel`).

The wallet signed an EIP-4361 message on the hosted page: it must be for *this* parked
request (its `Request ID`) on *this* server's page; the normal SIWE login then issues the
session and tokens, which are sealed into a single-use code record (60 s) with a key derived
from the code itself, so the store (Redis) never holds usable tokens. The code is exchanged
at the token endpoint (`did_auth.core.oauth.grants.authorization_code`). The login's preamble and
postamble (abuse budget, keys, metrics, audit) are the login use case's
(`did_auth.core.flows.login.Logins.authorization_code`).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from did_auth.core.errors import InvalidGrant, InvalidRequest
from did_auth.core.flows.guard import RequestContext
from did_auth.core.flows.oidc.request import (
    CODE_TTL,
    AuthorizeRedirectError,
    OidcEndpoint,
    authority,
    build_redirect,
    pending_request,
    request_key,
)
from did_auth.core.flows.revocations import RevocationBook
from did_auth.core.flows.siwe_login import SiweLogin, SiweRequest
from did_auth.core.oauth.codes import seal_code
from did_auth.core.siwe import SiweMessage
from did_auth.core.tokens.issue import Grant

__all__ = ["AuthorizationCodeIssuance"]


@dataclass
class AuthorizationCodeIssuance(OidcEndpoint):
    revocations: RevocationBook
    siwe: SiweLogin

    async def complete(
        self,
        request_id: object,
        message: object,
        signature: object,
        ctx: RequestContext | None = None,
        *,
        otp: object = None,
    ) -> tuple[str, Grant]:
        """Check the signed EIP-4361 message against the parked request, log in, and return
        the redirect URL carrying a fresh authorization code (and the login's grant)."""
        request = await pending_request(self.store, self.clock, request_id)
        if not isinstance(message, str) or not message:
            raise InvalidRequest("message is required (the exact EIP-4361 text)")
        msg = SiweMessage.from_text(message)
        # The signature must be for *this* request on *this* server's page.
        if msg.request_id != request.request_id:
            raise InvalidGrant("the message's Request ID is not this sign-in request")
        if msg.domain != authority(self.issuer) or msg.uri != self.issuer + "/authorize":
            raise InvalidGrant("the message was not made for this server's sign-in page")
        tokens, grant = await self.siwe.verify(
            SiweRequest(
                client_id=request.client_id,
                message=message,
                signature=signature,
                audience=request.audience,
                scope=" ".join(request.scopes),
                jkt=request.dpop_jkt,
                # A step-up scope (wallet:withdraw) needs the second factor in the same
                # request, as at /siwe/verify.
                otp=otp,
                ctx=ctx or RequestContext(),
                # OIDC Core §5.3.1: the access token of an OpenID Connect login is the one
                # for UserInfo: it also names the issuer in `aud`.
                userinfo=True,
            )
        )
        # Single use of the parked request (atomic): a concurrent completion that loses
        # here gets nothing, and the session it created is revoked.
        if await self.store.take(request_key(request.request_id)) is None:
            await self.revocations.revoke_sid(grant.sid, reason="signin_request_reused")
            raise InvalidGrant("the sign-in request was already used")
        code = secrets.token_urlsafe(32)
        record = {
            "client_id": request.client_id,
            "redirect_uri": request.redirect_uri,
            "code_challenge": request.code_challenge,
            "nonce": request.nonce,
            "scope": request.scope,
            "dpop_jkt": request.dpop_jkt,
            "exp": self.clock.now() + CODE_TTL,
            "tokens": tokens,
            "grant": {
                "sub": grant.sub,
                "client_id": grant.client_id,
                "audience": grant.audience,
                "scopes": list(grant.scopes),
                "auth_time": grant.auth_time,
                "amr": list(grant.amr),
                "sid": grant.sid,
            },
        }
        # Sealed with a key derived from the code: only the holder of the code can read the
        # tokens back, the store (Redis) holds nothing usable.
        key, sealed = seal_code(code, record)
        await self.store.put(key, sealed, CODE_TTL, nx=True)
        params = {"code": code}
        if request.state is not None:
            params["state"] = request.state
        params["iss"] = self.issuer
        return build_redirect(request.redirect_uri, params), grant

    async def cancel(self, request_id: object) -> str:
        """The user declined: `access_denied` at the redirect URI (RFC 6749 §4.1.2.1)."""
        request = await pending_request(self.store, self.clock, request_id)
        await self.store.take(request_key(request.request_id))
        return AuthorizeRedirectError(
            "access_denied",
            "the user declined to sign in",
            redirect_uri=request.redirect_uri,
            state=request.state,
            issuer=self.issuer,
        ).location
