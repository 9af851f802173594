"""The authorization endpoint (`GET`/`POST /authorize`): validate an authorization request
(RFC 6749 §4.1.1, OpenID Connect Core §3.1.2.1-2), park it, and describe the sign-in page.

Errors before the redirect URI is known good are shown, never redirected (RFC 6749
§4.1.2.1: `AuthorizePageError`); after, they go to the redirect URI
(`AuthorizeRedirectError`). PKCE (RFC 7636) with S256 is required of every client (RFC 9700
§2.1.1); redirect URIs are compared exactly (RFC 6749 §3.1.2.3, RFC 9700 §2.1).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

from did_auth.config.settings import ClientConfig
from did_auth.core.errors import DidAuthError, InvalidScope
from did_auth.core.flows.oidc.request import (
    REQUEST_TTL,
    AuthorizationRequest,
    AuthorizePageError,
    AuthorizeRedirectError,
    OidcEndpoint,
    request_key,
)
from did_auth.core.flows.oidc.signin import SignInPage, SignInPages, page_client
from did_auth.core.policy.scopes import parse_scope, resolve_audience, resolve_scopes

__all__ = ["OIDC_SCOPES", "AuthorizationEndpoint", "redirect_uri_allowed"]

# OpenID Connect scope values (Core §5.4, §11): they ask for ID-token / UserInfo content,
# not for did-auth API permissions, and are not passed on to the SIWE login.
OIDC_SCOPES: Final = frozenset({"openid", "profile", "email", "address", "phone", "offline_access"})

# RFC 7636 §4.1: an S256 challenge is 43 base64url chars.
_S256_RE: Final = re.compile(r"[A-Za-z0-9_-]{43}")
_JKT_RE: Final = re.compile(r"[A-Za-z0-9_-]{43}")
_MAX_STATE: Final = 1024
_MAX_NONCE: Final = 512
_LOOPBACK: Final = frozenset({"127.0.0.1", "localhost", "::1"})


def redirect_uri_allowed(client: ClientConfig, uri: str) -> bool:
    """Exact string comparison with a registered URI (RFC 6749 §3.1.2.3, RFC 9700 §2.1).

    Single exception, RFC 8252 §7.3: for a client with `any_localhost_port` (the embedded
    demo), a loopback redirect URI matches a registered one that differs only in the port.
    """
    if uri in client.redirect_uris:
        return True
    if not client.any_localhost_port:
        return False
    try:
        got = urlsplit(uri)
        got_port = got.port
    except ValueError:
        return False
    if got.hostname not in _LOOPBACK or got.scheme != "http" or got_port is None:
        return False
    if got.username is not None or got.fragment or "#" in uri:
        return False
    for registered in client.redirect_uris:
        want = urlsplit(registered)
        if (
            want.scheme == got.scheme
            and want.hostname == got.hostname
            and want.port is None
            and want.username is None
            and want.path == got.path
            and want.query == got.query
            and f"{got.scheme}://{got.hostname}:{got_port}" == f"{got.scheme}://{got.netloc}"
        ):
            return True
    return False


@dataclass
class AuthorizationEndpoint(OidcEndpoint):
    pages: SignInPages

    async def authorize(
        self, params: Mapping[str, str], repeated: frozenset[str] = frozenset()
    ) -> tuple[AuthorizationRequest, SignInPage]:
        """Validate an authorization request (RFC 6749 §4.1.1, OIDC Core §3.1.2.1-2).

        Raises AuthorizePageError before the redirect URI is known good, then
        AuthorizeRedirectError; on success parks the request and returns the page config.
        """
        # 1. client and redirect_uri: errors here are shown, never redirected (§4.1.2.1).
        if "client_id" in repeated or "redirect_uri" in repeated:
            raise AuthorizePageError(
                "Invalid request", "client_id and redirect_uri must each appear once."
            )
        client = page_client(self.settings, params)
        redirect_uri = params.get("redirect_uri")
        if not redirect_uri:
            # OIDC Core §3.1.2.1: redirect_uri is REQUIRED.
            raise AuthorizePageError("Invalid request", "The request has no redirect_uri.")
        if not redirect_uri_allowed(client, redirect_uri):
            raise AuthorizePageError(
                "Unregistered redirect URI",
                "The redirect_uri is not registered for this application, so did-auth will "
                "not send you there.",
            )

        # 2. Everything else is answered at the (now verified) redirect URI.
        state = params.get("state")
        if state is not None and (len(state) > _MAX_STATE or not state):
            state = None

        def fail(error: str, description: str) -> AuthorizeRedirectError:
            return AuthorizeRedirectError(
                error, description, redirect_uri=redirect_uri, state=state, issuer=self.issuer
            )

        if repeated:
            raise fail("invalid_request", f"parameter repeated: {sorted(repeated)[0]}")
        if "state" in params and state is None:
            raise fail("invalid_request", "state is empty or too long")
        if "request" in params:
            raise fail("request_not_supported", "request objects are not supported")
        if "request_uri" in params:
            raise fail("request_uri_not_supported", "request_uri is not supported")
        response_type = params.get("response_type")
        if not response_type:
            raise fail("invalid_request", "response_type is required")
        if response_type != "code":
            raise fail("unsupported_response_type", "only response_type=code is supported")
        mode = params.get("response_mode")
        if mode is not None and mode != "query":
            raise fail("invalid_request", "only response_mode=query is supported")
        # PKCE (RFC 7636 §4.4.1; RFC 9700 §2.1.1): required, S256 only.
        challenge = params.get("code_challenge")
        method = params.get("code_challenge_method")
        if not challenge:
            raise fail("invalid_request", "code_challenge is required (PKCE, S256)")
        if method != "S256":
            raise fail("invalid_request", "code_challenge_method must be S256")
        if not _S256_RE.fullmatch(challenge):
            raise fail("invalid_request", "code_challenge is not a base64url SHA-256 value")
        nonce = params.get("nonce")
        if nonce is not None and (not nonce or len(nonce) > _MAX_NONCE):
            raise fail("invalid_request", "nonce is empty or too long")
        prompt = (params.get("prompt") or "").split()
        if "none" in prompt:
            # OIDC Core §3.1.2.6: no silent login - every login is a wallet signature.
            raise fail("login_required", "a wallet signature is needed to sign in")
        dpop_jkt = params.get("dpop_jkt")
        if dpop_jkt is not None and not _JKT_RE.fullmatch(dpop_jkt):
            raise fail("invalid_request", "dpop_jkt is not a JWK SHA-256 thumbprint")
        # RFC 9449 §10: "Use of the dpop_jkt authorization request parameter is OPTIONAL."
        # A require_dpop client without it binds its tokens with the proof it MUST send at
        # the code exchange (did_auth.core.oauth.grants.authorization_code).

        # Scopes: `openid` required; OIDC scope values stay out of the did-auth grant.
        raw_scope = params.get("scope")
        if not raw_scope:
            raise fail("invalid_scope", "scope is required and must include openid")
        try:
            requested = parse_scope(raw_scope) or ()
            if "openid" not in requested:
                raise InvalidScope("scope must include openid")
            api_scopes = tuple(s for s in requested if s not in OIDC_SCOPES)
            audience = resolve_audience(
                client, params.get("audience"), issuer=self.settings.issuer
            )
            # A step-up scope is not refused here: the hosted page asks for the second
            # factor and /authorize/complete demands it with the signature.
            scopes = resolve_scopes(self.settings, client, api_scopes or None, step_up_ok=True)
        except DidAuthError as exc:
            code = exc.code if exc.code in ("invalid_scope", "invalid_request") else "invalid_scope"
            raise fail(code, exc.description) from None
        if not self.pages.siwe_ready(client, "/authorize"):
            raise fail(
                "unauthorized_client",
                "the client does not allow sign-in on this server's own page "
                "(add its host to domains and its URL to uris)",
            )

        request = AuthorizationRequest(
            request_id=secrets.token_urlsafe(24),
            client_id=client.client_id,
            redirect_uri=redirect_uri,
            scope=" ".join(requested),
            scopes=scopes,
            audience=audience,
            state=state,
            nonce=nonce,
            code_challenge=challenge,
            dpop_jkt=dpop_jkt,
            expires_at=self.clock.now() + REQUEST_TTL,
        )
        if not await self.store.put(
            request_key(request.request_id), request.to_bytes(), REQUEST_TTL, nx=True
        ):  # pragma: no cover - 192 random bits
            raise fail("temporarily_unavailable", "please retry")
        page = self.pages.page(
            "authorize",
            client,
            audience,
            scopes,
            request_id=request.request_id,
            redirect_host=urlsplit(redirect_uri).netloc,
        )
        return request, page
