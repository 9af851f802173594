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

The flow: `authorize()` validates a request and parks it server-side under a random id;
the sign-in page (served by did-auth itself) asks the wallet to sign an EIP-4361 message
whose `Request ID` is that id and whose ReCap (EIP-5573) carries the requested scopes;
`complete()` checks the message is for this request and this server, runs the normal SIWE
login (which issues the session and tokens) and returns a code; `exchange()` trades the code
(single use, 60 s, bound to client, redirect_uri, PKCE challenge and DPoP key) for the
tokens plus an ID token. Code records are encrypted with a key derived from the code itself,
so the store (Redis) never holds usable tokens. Pure: no web framework here.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Final
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import orjson

from did_auth.clock import Clock
from did_auth.errors import (
    DidAuthError,
    InvalidGrant,
    InvalidRequest,
    InvalidScope,
)
from did_auth.flows.guard import RequestContext
from did_auth.flows.siwe_login import SiweLogin, SiweRequest
from did_auth.oauth.codes import s256_challenge, seal_code
from did_auth.policy.clients import check_domain, check_uri
from did_auth.policy.scopes import parse_scope, resolve_audience, resolve_scopes
from did_auth.settings import ClientConfig, Settings
from did_auth.siwe import SiweMessage
from did_auth.siwe.parse import STATEMENT_RE
from did_auth.siwe.recaps import build_recap, recap_statement
from did_auth.store.base import Store
from did_auth.tokens.issue import Grant
from did_auth.tokens.keys import KeyRing
from did_auth.tokens.sessions import SessionStore

__all__ = [
    "CODE_TTL",
    "REQUEST_TTL",
    "AuthorizationRequest",
    "AuthorizePageError",
    "AuthorizeRedirectError",
    "OidcProvider",
    "SignInPage",
    "build_redirect",
    "redirect_uri_allowed",
    "s256_challenge",
    "scope_words",
    "userinfo_claims",
]

CODE_TTL: Final = 60  # seconds; RFC 6749 §4.1.2: "a maximum ... of 10 minutes is RECOMMENDED"
REQUEST_TTL: Final = 600  # how long a parked authorization request waits for the wallet

# OpenID Connect scope values (Core §5.4, §11): they ask for ID-token / UserInfo content,
# not for did-auth API permissions, and are not passed on to the SIWE login.
OIDC_SCOPES: Final = frozenset({"openid", "profile", "email", "address", "phone", "offline_access"})

# RFC 7636 §4.1: an S256 challenge is 43 base64url chars.
_S256_RE: Final = re.compile(r"[A-Za-z0-9_-]{43}")
_JKT_RE: Final = re.compile(r"[A-Za-z0-9_-]{43}")
_REQUEST_ID_RE: Final = re.compile(r"[A-Za-z0-9_-]{20,64}")
_MAX_STATE: Final = 1024
_MAX_NONCE: Final = 512
_LOOPBACK: Final = frozenset({"127.0.0.1", "localhost", "::1"})


_SCOPE_WORDS: Final = {
    "account:read": "see your account balances and open orders",
    "trade:write": "place and cancel orders for you",
    "wallet:withdraw": "withdraw funds from your account",
}


class AuthorizePageError(Exception):
    """An authorization request error that must be shown to the user, never redirected
    (RFC 6749 §4.1.2.1: missing/unknown client or a redirect_uri that is not registered)."""

    def __init__(self, title: str, message: str) -> None:
        super().__init__(message)
        self.title = title
        self.message = message


class AuthorizeRedirectError(Exception):
    """An error sent back to the client's (verified) redirect_uri with `error` and `state`."""

    def __init__(
        self, error: str, description: str, *, redirect_uri: str, state: str | None, issuer: str
    ) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.redirect_uri = redirect_uri
        self.state = state
        self.issuer = issuer

    @property
    def location(self) -> str:
        params = {"error": self.error, "error_description": self.description}
        if self.state is not None:
            params["state"] = self.state
        params["iss"] = self.issuer
        return build_redirect(self.redirect_uri, params)


def build_redirect(redirect_uri: str, params: Mapping[str, str]) -> str:
    """Add `params` to the redirect URI's query, keeping its own query (RFC 6749 §3.1.2)."""
    parts = urlsplit(redirect_uri)
    query = parse_qsl(parts.query, keep_blank_values=True)
    query += list(params.items())
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), ""))


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


def scope_words(settings: Settings, scope: str) -> str:
    """A scope in words a wallet user understands (config `description`, else built-in)."""
    described = settings.scope_config(scope).description
    return described or _SCOPE_WORDS.get(scope) or f"use the {scope} permission"


def _statement_safe(text: str) -> str:
    """Only the characters EIP-4361's statement ABNF allows, single-spaced."""
    kept = "".join(c if STATEMENT_RE.fullmatch(c) else " " for c in text)
    return " ".join(kept.split())


@dataclass(frozen=True)
class AuthorizationRequest:
    """A validated authorization request, parked server-side until the wallet signs."""

    request_id: str
    client_id: str
    redirect_uri: str
    scope: str  # the requested scope string, `openid` included
    scopes: tuple[str, ...]  # the did-auth scopes the login will grant
    audience: str
    state: str | None
    nonce: str | None
    code_challenge: str
    dpop_jkt: str | None
    expires_at: float

    def to_bytes(self) -> bytes:
        return orjson.dumps(asdict(self))

    @classmethod
    def from_bytes(cls, raw: bytes) -> AuthorizationRequest:
        d = orjson.loads(raw)
        d["scopes"] = tuple(d["scopes"])
        return cls(**d)


@dataclass(frozen=True)
class SignInPage:
    """What the hosted sign-in page needs (serialised into the page as JSON)."""

    mode: str  # "authorize" (OIDC) or "signin" (plain dApp login)
    issuer: str
    client_id: str
    client_name: str
    audience: str
    scopes: tuple[tuple[str, str], ...]  # (scope, words)
    statement: str
    resources: tuple[str, ...]
    chain_ids: tuple[int, ...]
    nonce_ttl: int
    request_id: str | None = None
    redirect_host: str | None = None
    return_to: str | None = None
    origin: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "mode": self.mode,
            "issuer": self.issuer,
            "client_id": self.client_id,
            "client_name": self.client_name,
            "audience": self.audience,
            "scopes": [{"scope": s, "words": w} for s, w in self.scopes],
            "statement": self.statement,
            "resources": list(self.resources),
            "chain_ids": list(self.chain_ids),
            "nonce_ttl": self.nonce_ttl,
        }
        for name in ("request_id", "redirect_host", "return_to", "origin"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        return out


def _request_key(request_id: str) -> str:
    return f"da:{{az:{request_id}}}"


def _authority(issuer: str) -> str:
    return urlsplit(issuer).netloc


def userinfo_claims(claims: Mapping[str, Any]) -> dict[str, Any]:
    """OIDC Core §5.3.2: the UserInfo response for the claims of a live access token we
    issued (checked by `did_auth.oauth.protected_resource`): its subject."""
    sub = str(claims["sub"])
    info: dict[str, Any] = {"sub": sub}
    if sub.startswith("did:pkh:eip155:"):
        info["preferred_username"] = sub.rsplit(":", 1)[-1]
    return info


@dataclass
class OidcProvider:
    settings: Settings
    clock: Clock
    store: Store
    keys: KeyRing
    sessions: SessionStore
    siwe: SiweLogin

    # --- shared ---------------------------------------------------------------------------

    @property
    def issuer(self) -> str:
        return self.settings.issuer

    def _siwe_ready(self, client: ClientConfig, page_path: str) -> bool:
        """The hosted page signs with did-auth's own domain and URI: the client must allow
        them (list the issuer's host in `domains` and its URL in `uris`)."""
        try:
            check_domain(client, _authority(self.issuer))
            check_uri(client, self.issuer + page_path, None)
        except DidAuthError:
            return False
        return True

    def _page(
        self,
        mode: str,
        client: ClientConfig,
        audience: str,
        scopes: tuple[str, ...],
        **extra: Any,
    ) -> SignInPage:
        name = _statement_safe(client.name or client.client_id) or "this application"
        words = tuple((s, scope_words(self.settings, s)) for s in scopes)
        allowed = "; ".join(w for _, w in words)
        base = _statement_safe(f"Sign in to {name}. You allow it to {allowed}") + "."
        recap_uri, suffix = build_recap(audience, scopes)
        statement = recap_statement(base, suffix)
        if STATEMENT_RE.fullmatch(statement) is None:  # pragma: no cover - _statement_safe
            raise InvalidRequest("cannot build a sign-in statement for this client")
        return SignInPage(
            mode=mode,
            issuer=self.issuer,
            client_id=client.client_id,
            client_name=client.name or client.client_id,
            audience=audience,
            scopes=words,
            statement=statement,
            resources=(recap_uri,),
            chain_ids=tuple(client.chain_ids),
            nonce_ttl=self.settings.nonce_ttl,
            **extra,
        )

    # --- GET /authorize -------------------------------------------------------------------

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
        client_id = params.get("client_id")
        if not client_id:
            raise AuthorizePageError("Invalid request", "The request has no client_id.")
        client = self.settings.client(client_id)
        if client is None:
            raise AuthorizePageError("Unknown application", "The client_id is not registered.")
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
        # the code exchange (did_auth.oauth.grants.authorization_code).

        # Scopes: `openid` required; OIDC scope values stay out of the did-auth grant.
        raw_scope = params.get("scope")
        if not raw_scope:
            raise fail("invalid_scope", "scope is required and must include openid")
        try:
            requested = parse_scope(raw_scope) or ()
            if "openid" not in requested:
                raise InvalidScope("scope must include openid")
            api_scopes = tuple(s for s in requested if s not in OIDC_SCOPES)
            audience = resolve_audience(client, params.get("audience"))
            scopes = resolve_scopes(self.settings, client, api_scopes or None)
        except DidAuthError as exc:
            code = exc.code if exc.code in ("invalid_scope", "invalid_request") else "invalid_scope"
            raise fail(code, exc.description) from None
        if not self._siwe_ready(client, "/authorize"):
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
            _request_key(request.request_id), request.to_bytes(), REQUEST_TTL, nx=True
        ):  # pragma: no cover - 192 random bits
            raise fail("temporarily_unavailable", "please retry")
        page = self._page(
            "authorize",
            client,
            audience,
            scopes,
            request_id=request.request_id,
            redirect_host=urlsplit(redirect_uri).netloc,
        )
        return request, page

    async def _pending(self, request_id: object) -> AuthorizationRequest:
        if not isinstance(request_id, str) or not _REQUEST_ID_RE.fullmatch(request_id):
            raise InvalidRequest("request_id is missing or malformed")
        raw = await self.store.get(_request_key(request_id))
        if raw is None:
            raise InvalidGrant(
                "the sign-in request expired or was already used: go back to the application "
                "and start again",
                reason="authorize_request_unknown",
            )
        request = AuthorizationRequest.from_bytes(raw)
        if self.clock.now() >= request.expires_at:
            raise InvalidGrant("the sign-in request expired", reason="authorize_request_expired")
        return request

    # --- POST /authorize/complete -----------------------------------------------------------

    async def complete(
        self,
        request_id: object,
        message: object,
        signature: object,
        ctx: RequestContext | None = None,
    ) -> tuple[str, Grant]:
        """Check the signed EIP-4361 message against the parked request, log in, and return
        the redirect URL carrying a fresh authorization code (and the login's grant)."""
        request = await self._pending(request_id)
        if not isinstance(message, str) or not message:
            raise InvalidRequest("message is required (the exact EIP-4361 text)")
        msg = SiweMessage.from_text(message)
        # The signature must be for *this* request on *this* server's page.
        if msg.request_id != request.request_id:
            raise InvalidGrant("the message's Request ID is not this sign-in request")
        if msg.domain != _authority(self.issuer) or msg.uri != self.issuer + "/authorize":
            raise InvalidGrant("the message was not made for this server's sign-in page")
        tokens, grant = await self.siwe.verify(
            SiweRequest(
                client_id=request.client_id,
                message=message,
                signature=signature,
                audience=request.audience,
                scope=" ".join(request.scopes),
                jkt=request.dpop_jkt,
                ctx=ctx or RequestContext(),
            )
        )
        # Single use of the parked request (atomic): a concurrent completion that loses
        # here gets nothing, and the session it created is revoked.
        if await self.store.take(_request_key(request.request_id)) is None:
            await self.sessions.revoke(grant.sid)
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
        request = await self._pending(request_id)
        await self.store.take(_request_key(request.request_id))
        return AuthorizeRedirectError(
            "access_denied",
            "the user declined to sign in",
            redirect_uri=request.redirect_uri,
            state=request.state,
            issuer=self.issuer,
        ).location

    # --- GET /signin (plain dApp login on the hosted page) ---------------------------------

    def signin_page(self, params: Mapping[str, str]) -> SignInPage:
        """Validate the hosted sign-in page's parameters: `client_id`, `scope`, `audience`,
        and where the tokens go: `return_to` (a path on this server; the page keeps them in
        the tab's sessionStorage) or `origin` (a registered origin of the client; the page
        posts them to its opener window)."""
        client_id = params.get("client_id")
        if not client_id:
            raise AuthorizePageError("Invalid request", "The request has no client_id.")
        client = self.settings.client(client_id)
        if client is None:
            raise AuthorizePageError("Unknown application", "The client_id is not registered.")
        try:
            audience = resolve_audience(client, params.get("audience"))
            scopes = resolve_scopes(self.settings, client, parse_scope(params.get("scope")))
        except DidAuthError as exc:
            raise AuthorizePageError("Invalid request", exc.description) from None
        if not self._siwe_ready(client, "/signin"):
            raise AuthorizePageError(
                "Not available",
                "This application does not allow sign-in on did-auth's own page.",
            )
        return_to = params.get("return_to")
        origin = params.get("origin")
        if return_to is not None and not _local_path(return_to):
            raise AuthorizePageError("Invalid request", "return_to must be a path on this site.")
        # The tokens go to the client's own registered origins only, compared exactly (as
        # RFC 9700 §2.1 has it for redirect URIs), never to a destination the request alone
        # names. `origin`: posted to the opener, which
        # must be exactly a registered origin (or loopback, for an any_localhost_port
        # client). Without it they stay in this tab, on did-auth's own origin: only for a
        # client whose origin that is (the demo, or one registering the issuer's origin).
        if origin is not None:
            if return_to is not None:
                raise AuthorizePageError(
                    "Invalid request", "Give either origin (pop-up) or return_to, not both."
                )
            if not self.origin_allowed(client, origin):
                raise AuthorizePageError(
                    "Invalid request", "origin is not a registered origin of this application."
                )
        elif not (client.demo or self.origin_allowed(client, _origin_of(self.issuer))):
            raise AuthorizePageError(
                "Invalid request",
                "This application receives its tokens on its own site: it must open this page "
                "with its registered origin (origin=...).",
            )
        return self._page("signin", client, audience, scopes, return_to=return_to, origin=origin)

    def origin_allowed(self, client: ClientConfig, origin: str) -> bool:
        """Exactly one of the client's registered `origins` (RFC 6454 serialisation), or a
        loopback origin for an `any_localhost_port` client (RFC 8252 §7.3)."""
        if origin in client.origins:
            return True
        return client.any_localhost_port and _loopback_origin(origin)


def _local_path(path: str) -> bool:
    """A same-origin path: "/..." but not "//host" or "/\\host", no control characters."""
    return (
        path.startswith("/")
        and not path.startswith("//")
        and "\\" not in path
        and all(0x20 < ord(c) < 0x7F for c in path)
        and len(path) <= 2048
    )


_LOOPBACK_ORIGIN_RE: Final = re.compile(r"http://(localhost|127\.0\.0\.1|\[::1\])(:[0-9]{1,5})?")


def _origin_of(url: str) -> str:
    """RFC 6454 §6.2 serialisation of a URL's origin: scheme "://" host [":" port]."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def _loopback_origin(origin: str) -> bool:
    return _LOOPBACK_ORIGIN_RE.fullmatch(origin) is not None
