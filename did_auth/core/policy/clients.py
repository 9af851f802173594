"""Client policy checks for SIWE logins (EIP-4361 §Verifying: domain, uri, chain id)."""

from __future__ import annotations

import re
from typing import Final
from urllib.parse import SplitResult, urlsplit

from did_auth.config.settings import ClientConfig, Settings
from did_auth.core.errors import InvalidClient, InvalidGrant, InvalidRequest

__all__ = ["check_chain", "check_domain", "check_uri", "get_client"]

_LOCAL_HOSTS = {"localhost", "127.0.0.1", "[::1]"}


def get_client(settings: Settings, client_id: object) -> ClientConfig:
    if not isinstance(client_id, str) or not client_id:
        raise InvalidRequest("client_id is required")
    client = settings.client(client_id)
    if client is None:
        raise InvalidClient("unknown client_id")
    return client


def _host_port(authority: str) -> tuple[str, str | None]:
    # authority = [ userinfo "@" ] host [ ":" port ]
    hostport = authority.rsplit("@", 1)[-1]
    if hostport.startswith("["):
        end = hostport.find("]")
        host, rest = hostport[: end + 1], hostport[end + 1 :]
        return host.lower(), rest[1:] if rest.startswith(":") else None
    host, sep, port = hostport.partition(":")
    return host.lower(), port if sep else None


def check_domain(client: ClientConfig, domain: str) -> None:
    """EIP-4361: the relying party MUST check that `domain` matches the origin it serves.

    did-auth serves many dApps, so the allowed values are the client's registered `domains`.
    """
    if domain in client.domains:
        return
    if client.any_localhost_port:
        host, _ = _host_port(domain)
        if "@" not in domain and (host in _LOCAL_HOSTS or host in client.domains):
            return
    raise InvalidGrant("the message's domain is not allowed for this client", reason="domain")


def _origin(u: SplitResult) -> tuple[str, str, int | None]:
    port = u.port
    if port is None:
        port = {"http": 80, "https": 443}.get(u.scheme)
    return u.scheme.lower(), (u.hostname or "").lower(), port


# Path segments that are dot-segments once percent-decoded (RFC 3986 §3.3, §5.2.4), and
# encoded or backslash separators some servers treat as "/".
_DOT_SEGMENT_RE: Final = re.compile(r"(?:\.|%2e){1,2}", re.IGNORECASE)
_HIDDEN_SEPARATOR_RE: Final = re.compile(r"%2f|%5c|\\", re.IGNORECASE)


def _uri_problem(got: SplitResult) -> str | None:
    """Why a SIWE `uri` is not in the plain form a prefix comparison may be applied to."""
    # RFC 3986 §3.2.1: "Use of the format "user:password" in the userinfo field is
    # deprecated"; an `@` in the authority also lets the host a user reads differ from
    # the one that is parsed (RFC 3986 §7.6), so no userinfo at all.
    if "@" in got.netloc:
        return "the message's uri must not contain user information"
    # RFC 3986 §5.2.4: "." and ".." segments (also as %2e) are removed when the reference
    # is resolved, so `/app/../admin` names `/admin`: refuse them rather than let them
    # pass a registered `/app` prefix.
    for segment in got.path.split("/"):
        if _DOT_SEGMENT_RE.fullmatch(segment):
            return "the message's uri must not contain dot-segments (/./, /../)"
    if _HIDDEN_SEPARATOR_RE.search(got.path):
        return "the message's uri must not contain encoded slashes or backslashes"
    return None


def check_uri(client: ClientConfig, uri: str, scheme: str | None) -> None:
    """The `uri` must lie under one of the client's registered URIs: same scheme, host and
    port, and a path prefix that ends at a segment boundary (no `example.com.evil` tricks).

    EIP-4361: `uri` is "an RFC 3986 URI referring to the resource that is the subject of
    the signing"; only its normalised form (no userinfo, no dot-segments) is accepted.
    """
    try:
        got = urlsplit(uri)
        got_origin = _origin(got)
    except ValueError:
        raise InvalidGrant("the message's uri is not a valid URI", reason="uri") from None
    problem = _uri_problem(got)
    if problem is not None:
        raise InvalidGrant(problem, reason="uri")
    if scheme is not None and scheme.lower() != got.scheme.lower():
        raise InvalidGrant("the message's scheme does not match its uri", reason="scheme")
    for allowed in client.uris:
        want = urlsplit(allowed)
        try:
            want_origin = _origin(want)
        except ValueError:
            continue
        same = got_origin == want_origin
        if not same and client.any_localhost_port:
            same = (
                got_origin[0] == want_origin[0]
                and got_origin[1] == want_origin[1]
                and got_origin[1] in {"localhost", "127.0.0.1", "::1"}
            )
        if not same:
            continue
        base = want.path.rstrip("/")
        if got.path == base or got.path.startswith(base + "/") or not base:
            return
    raise InvalidGrant("the message's uri is not allowed for this client", reason="uri")


def check_chain(client: ClientConfig, chain_id: int) -> None:
    if chain_id not in client.chain_ids:
        raise InvalidRequest("chain id not allowed for this client", reason="chain")
