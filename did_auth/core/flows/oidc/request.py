"""The parked authorization request (OpenID Connect Core §3.1.2) and the answers sent to
the client's verified redirect URI (RFC 6749 §4.1.2, RFC 9207 `iss`).

`AuthorizationEndpoint.authorize` parks a validated request under a random id for
`REQUEST_TTL`; the completion (`AuthorizationCodeIssuance`) or the cancel takes it, once.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Final
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import orjson

from did_auth.config.settings import Settings
from did_auth.core.clock import Clock
from did_auth.core.errors import InvalidGrant, InvalidRequest
from did_auth.core.ports import store_keys
from did_auth.core.ports.store import Store

__all__ = [
    "CODE_TTL",
    "REQUEST_TTL",
    "AuthorizationRequest",
    "AuthorizePageError",
    "AuthorizeRedirectError",
    "OidcEndpoint",
    "authority",
    "build_redirect",
    "pending_request",
    "request_key",
]

CODE_TTL: Final = 60  # seconds; RFC 6749 §4.1.2: "a maximum ... of 10 minutes is RECOMMENDED"
REQUEST_TTL: Final = 600  # how long a parked authorization request waits for the wallet
_REQUEST_ID_RE: Final = re.compile(r"[A-Za-z0-9_-]{20,64}")


@dataclass
class OidcEndpoint:
    """A step of the code flow: the settings (whose issuer it serves), the clock and the
    store that holds the parked authorization requests."""

    settings: Settings
    clock: Clock
    store: Store

    @property
    def issuer(self) -> str:
        return self.settings.issuer


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


def request_key(request_id: str) -> str:
    return store_keys.authorize_request(request_id)


def authority(issuer: str) -> str:
    """The issuer's host[:port]: the EIP-4361 `domain` of the hosted page's messages."""
    return urlsplit(issuer).netloc


async def pending_request(store: Store, clock: Clock, request_id: object) -> AuthorizationRequest:
    """The parked request `request_id`, still waiting (not yet taken, not expired)."""
    if not isinstance(request_id, str) or not _REQUEST_ID_RE.fullmatch(request_id):
        raise InvalidRequest("request_id is missing or malformed")
    raw = await store.get(request_key(request_id))
    if raw is None:
        raise InvalidGrant(
            "the sign-in request expired or was already used: go back to the application "
            "and start again",
            reason="authorize_request_unknown",
        )
    request = AuthorizationRequest.from_bytes(raw)
    if clock.now() >= request.expires_at:
        raise InvalidGrant("the sign-in request expired", reason="authorize_request_expired")
    return request
