"""Scope and audience decisions: requested ⊆ client policy, defaults, ReCap grants."""

from __future__ import annotations

from did_auth.config.settings import ClientConfig, Settings
from did_auth.core.errors import InvalidRequest, InvalidScope

__all__ = ["parse_scope", "resolve_audience", "resolve_scopes"]

_MAX_SCOPES = 32


def parse_scope(scope: object) -> tuple[str, ...] | None:
    """RFC 6749 §3.3: space-delimited, case-sensitive strings; None when absent."""
    if scope is None:
        return None
    if not isinstance(scope, str):
        raise InvalidRequest("scope must be a space-delimited string")
    items = scope.split(" ")
    if scope == "" or any(not s for s in items):
        raise InvalidScope("scope is empty or has stray spaces")
    for s in items:
        # scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
        if any(c in '"\\' or not (0x21 <= ord(c) <= 0x7E) for c in s):
            raise InvalidScope("scope contains a character RFC 6749 forbids")
    if len(items) > _MAX_SCOPES:
        raise InvalidScope("too many scopes")
    return tuple(dict.fromkeys(items))


def resolve_audience(
    client: ClientConfig, audience: object, *, issuer: str | None = None
) -> str:
    """The audience of the tokens: the requested one, else the client's first.

    `issuer` (did-auth's own identifier) is allowed for every client: a token for
    did-auth's own protected resources (`/otp/*`, `/userinfo`), which accept no other
    audience (RFC 9068 §4)."""
    if audience is None:
        return client.audiences[0]
    if not isinstance(audience, str) or not audience:
        raise InvalidRequest("audience must be a non-empty string")
    if issuer is not None and audience == issuer:
        return audience
    if audience not in client.audiences:
        raise InvalidScope("audience not allowed for this client", reason="audience")
    return audience


def resolve_scopes(
    settings: Settings,
    client: ClientConfig,
    requested: tuple[str, ...] | None,
    *,
    signed: set[str] | None = None,
    delegate: bool = False,
    step_up_ok: bool = False,
) -> tuple[str, ...]:
    """The scopes to grant.

    - `signed` (an EIP-5573 ReCap the user signed): grant exactly what it names, intersected
      with the client's policy, never more; a `requested` scope must lie inside it.
    - otherwise the request's `scope` decides; absent, the client's default scopes.
    - a step-up scope needs `step_up_ok` (a second factor in this request).
    """
    allowed = set(client.scopes)
    if delegate and client.delegate_scopes is not None:
        allowed = set(client.delegate_scopes)
    if signed is not None:
        granted_set = signed & allowed
        if requested is not None:
            if not set(requested) <= granted_set:
                raise InvalidScope("requested scope exceeds what the signed ReCap grants")
            granted = requested
        else:
            granted = tuple(s for s in client.scopes if s in granted_set)
    elif requested is not None:
        extra = [s for s in requested if s not in allowed]
        if extra:
            raise InvalidScope(f"scope not allowed for this client: {' '.join(extra)}")
        granted = requested
    else:
        granted = tuple(s for s in client.default_scopes if s in allowed)
    if not granted:
        raise InvalidScope("no scope could be granted")
    needs = [s for s in granted if settings.scope_config(s).step_up]
    if needs and not step_up_ok:
        raise InvalidScope(
            f"scope {' '.join(needs)} needs step-up: a second factor (otp) with a fresh login",
            reason="step_up_required",
        )
    return granted


def token_ttl(settings: Settings, scopes: tuple[str, ...]) -> int:
    """The access-token lifetime: the configured TTL, shortened by any scope's max_ttl."""
    ttl = settings.access_token_ttl
    for s in scopes:
        cap = settings.scope_config(s).max_ttl
        if cap is not None:
            ttl = min(ttl, cap)
    return ttl
