"""OpenID Connect authorization-code flow with PKCE, in front of the SIWE login.

Specifications followed (section numbers in the comments):
- OpenID Connect Core 1.0 §3.1 (authorization code flow, ID token, nonce, auth_time),
  §5.3 (UserInfo), §6 (request objects: not supported, refused with the defined codes);
- RFC 6749 §4.1 (code grant), §3.1.2 / §10.6 (exact redirect_uri, never redirect to an
  unregistered one), §4.1.2.1 (which errors are shown and which are redirected);
- RFC 7636 (PKCE): `code_challenge_method=S256` is required, `plain` is refused;
- RFC 9700 (OAuth 2.0 Security BCP): PKCE for every client, single-use short-lived codes,
  exact redirect URI matching; RFC 9207 `iss` in the authorization response;
- RFC 9449 §10 (`dpop_jkt`, OPTIONAL): a DPoP client may bind the tokens at the
  authorization request; without it, the proof at the code exchange binds them (§5).

One module per endpoint; pure, no web framework here:

| module       | endpoint                          | what                                  |
| ------------ | --------------------------------- | ------------------------------------- |
| `authorize`  | GET/POST /authorize               | validate, park the request, the page  |
| `completion` | POST /authorize/complete, /cancel | the signed message -> a sealed code   |
| `signin`     | the hosted page, GET /signin      | what the wallet is asked to sign      |
| `userinfo`   | GET/POST /userinfo                | the subject of a live access token    |
| `request`    | (shared)                          | the parked request, redirect answers  |

The code is traded for the tokens plus an ID token at the token endpoint
(`did_auth.core.oauth.grants.authorization_code`: single use, 60 s, bound to client,
redirect_uri, PKCE challenge and DPoP key); discovery is `did_auth.core.oauth.discovery`.
`OidcProvider` wires the endpoints of one server together.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from did_auth.config.settings import ClientConfig, Settings
from did_auth.core.clock import Clock
from did_auth.core.flows.oidc.authorize import (
    OIDC_SCOPES,
    AuthorizationEndpoint,
    redirect_uri_allowed,
)
from did_auth.core.flows.oidc.completion import AuthorizationCodeIssuance
from did_auth.core.flows.oidc.request import (
    CODE_TTL,
    REQUEST_TTL,
    AuthorizationRequest,
    AuthorizePageError,
    AuthorizeRedirectError,
    build_redirect,
)
from did_auth.core.flows.oidc.signin import SignInPage, SignInPages, scope_words
from did_auth.core.flows.oidc.userinfo import userinfo_claims
from did_auth.core.flows.revocations import RevocationBook
from did_auth.core.flows.siwe_login import SiweLogin
from did_auth.core.oauth.codes import s256_challenge
from did_auth.core.ports.store import Store
from did_auth.core.tokens.keys import KeyRing
from did_auth.core.tokens.sessions import SessionStore

__all__ = [
    "CODE_TTL",
    "OIDC_SCOPES",
    "REQUEST_TTL",
    "AuthorizationCodeIssuance",
    "AuthorizationEndpoint",
    "AuthorizationRequest",
    "AuthorizePageError",
    "AuthorizeRedirectError",
    "OidcProvider",
    "SignInPage",
    "SignInPages",
    "build_redirect",
    "redirect_uri_allowed",
    "s256_challenge",
    "scope_words",
    "userinfo_claims",
]


@dataclass
class OidcProvider:
    """The OIDC endpoints of one server, built from its services."""

    settings: Settings
    clock: Clock
    store: Store
    keys: KeyRing
    sessions: SessionStore
    siwe: SiweLogin
    # Revokes (and announces) the session of a completion that lost the race for its parked
    # request; the SIWE login's book when not given.
    revocations: RevocationBook | None = None
    pages: SignInPages = field(init=False)
    authorization: AuthorizationEndpoint = field(init=False)
    codes: AuthorizationCodeIssuance = field(init=False)

    def __post_init__(self) -> None:
        self.pages = SignInPages(self.settings)
        self.authorization = AuthorizationEndpoint(
            self.settings, self.clock, self.store, self.pages
        )
        revocations = self.revocations or self.siwe.revocations
        if revocations is None:
            raise ValueError("OidcProvider needs a RevocationBook (revocations=...)")
        self.codes = AuthorizationCodeIssuance(
            self.settings, self.clock, self.store, revocations, self.siwe
        )

    async def authorize(
        self, params: Mapping[str, str], repeated: frozenset[str] = frozenset()
    ) -> tuple[AuthorizationRequest, SignInPage]:
        return await self.authorization.authorize(params, repeated)

    async def cancel(self, request_id: object) -> str:
        return await self.codes.cancel(request_id)

    def signin_page(self, params: Mapping[str, str]) -> SignInPage:
        return self.pages.signin_page(params)

    def origin_allowed(self, client: ClientConfig, origin: str) -> bool:
        return self.pages.origin_allowed(client, origin)
