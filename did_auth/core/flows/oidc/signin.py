"""The hosted sign-in page: what it shows and signs (an EIP-4361 message whose statement
says, in words, what the client may do, with the scopes in an EIP-5573 ReCap), and
`GET /signin`, a plain dApp login on that page.

The page signs with did-auth's own domain and URI (`/authorize` or `/signin`): a client
must allow them (its `domains` list the issuer's host, its `uris` the page's URL).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import urlsplit

from did_auth.config.settings import ClientConfig, Settings
from did_auth.core.errors import DidAuthError, InvalidRequest
from did_auth.core.flows.oidc.request import AuthorizePageError, authority
from did_auth.core.policy.clients import check_domain, check_uri
from did_auth.core.policy.scopes import parse_scope, resolve_audience, resolve_scopes
from did_auth.core.siwe.parse import STATEMENT_RE
from did_auth.core.siwe.recaps import build_recap, recap_statement

__all__ = ["SignInPage", "SignInPages", "page_client", "scope_words"]

_SCOPE_WORDS: Final = {
    "account:read": "see your account balances and open orders",
    "trade:write": "place and cancel orders for you",
    "wallet:withdraw": "withdraw funds from your account",
}


def scope_words(settings: Settings, scope: str) -> str:
    """A scope in words a wallet user understands (config `description`, else built-in)."""
    described = settings.scope_config(scope).description
    return described or _SCOPE_WORDS.get(scope) or f"use the {scope} permission"


def page_client(settings: Settings, params: Mapping[str, str]) -> ClientConfig:
    """The registered client a page request names (`client_id`): a missing or unknown
    one is shown on an error page, never redirected to (RFC 6749 §4.1.2.1)."""
    client_id = params.get("client_id")
    if not client_id:
        raise AuthorizePageError("Invalid request", "The request has no client_id.")
    client = settings.client(client_id)
    if client is None:
        raise AuthorizePageError("Unknown application", "The client_id is not registered.")
    return client


def _statement_safe(text: str) -> str:
    """Only the characters EIP-4361's statement ABNF allows, single-spaced."""
    kept = "".join(c if STATEMENT_RE.fullmatch(c) else " " for c in text)
    return " ".join(kept.split())


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
    # The requested scopes that need a second factor in the same request: the page asks
    # for a TOTP code (sent as `otp`) before the wallet signs.
    step_up: tuple[str, ...] = ()
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
            "step_up": list(self.step_up),
        }
        for name in ("request_id", "redirect_host", "return_to", "origin"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        return out


@dataclass
class SignInPages:
    settings: Settings

    @property
    def issuer(self) -> str:
        return self.settings.issuer

    def siwe_ready(self, client: ClientConfig, page_path: str) -> bool:
        """The hosted page signs with did-auth's own domain and URI: the client must allow
        them (list the issuer's host in `domains` and its URL in `uris`)."""
        try:
            check_domain(client, authority(self.issuer))
            check_uri(client, self.issuer + page_path, None)
        except DidAuthError:
            return False
        return True

    def page(
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
            step_up=tuple(s for s in scopes if self.settings.scope_config(s).step_up),
            **extra,
        )

    # --- GET /signin (plain dApp login on the hosted page) ---------------------------------

    def signin_page(self, params: Mapping[str, str]) -> SignInPage:
        """Validate the hosted sign-in page's parameters: `client_id`, `scope`, `audience`,
        and where the tokens go: `return_to` (a path on this server; the page keeps them in
        the tab's sessionStorage) or `origin` (a registered origin of the client; the page
        posts them to its opener window)."""
        client = page_client(self.settings, params)
        try:
            audience = resolve_audience(
                client, params.get("audience"), issuer=self.settings.issuer
            )
            # A step-up scope is not refused here: the page asks for the second factor
            # (a TOTP code) and /siwe/verify demands it with the signature.
            scopes = resolve_scopes(
                self.settings, client, parse_scope(params.get("scope")), step_up_ok=True
            )
        except DidAuthError as exc:
            raise AuthorizePageError("Invalid request", exc.description) from None
        if not self.siwe_ready(client, "/signin"):
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
        return self.page("signin", client, audience, scopes, return_to=return_to, origin=origin)

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
