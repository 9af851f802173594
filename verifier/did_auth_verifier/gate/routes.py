"""The route table: which scopes (and whether step-up) each method + path needs.

A route's `path` is exact (`/orders`) or a prefix ending in `/*` (`/orders/*` matches
`/orders/` and everything under it, not `/orders` itself). An exact route wins over a
prefix; among prefixes the longest wins. A request that matches no route is denied:
the table is an allow-list.

The path of the original request (nginx's `$request_uri`, the forward-auth `X-Forwarded-Uri`)
is decided on in one canonical spelling: query and fragment dropped, percent-encoded
unreserved characters decoded (RFC 3986 §6.2.2.2). A path that the upstream could read as
another one is refused rather than guessed at: dot segments (RFC 3986 §5.2.4: `/public/../
withdrawals` is `/withdrawals` to many servers), empty segments (`//orders`, which nginx's
`merge_slashes` folds), encoded `/`, `\\` or `.` separators (any case), `;` path parameters
(`..;` is `..` to servlet containers), `%25` (double encoding), control or non-ASCII bytes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

__all__ = ["METHODS", "Route", "RouteTable", "canonical_path", "check_route_path"]

METHODS: Final = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

_PCT: Final = re.compile(r"%([0-9A-Fa-f]{2})")
_PCT_25: Final = re.compile(r"%25")
_PCT_SEPARATOR: Final = re.compile(r"%(2e|2f|5c)", re.IGNORECASE)
_UNRESERVED: Final = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_~")
# RFC 3986 §3.3 pchar (unreserved / pct-encoded / sub-delims / ":" / "@") and "/".
_PATH: Final = re.compile(r"/[A-Za-z0-9\-._~!$&'()*+,;=:@%/]*")


def _decode_unreserved(match: re.Match[str]) -> str:
    char = chr(int(match.group(1), 16))
    return char if char in _UNRESERVED else "%" + match.group(1).upper()


def canonical_path(uri: str) -> str:
    """The path of a request-target in canonical form; ValueError when it is ambiguous."""
    path = uri.split("?", 1)[0].split("#", 1)[0]
    if _PATH.fullmatch(path) is None:
        raise ValueError("not an absolute path")
    # RFC 3986 §3.3 lets a segment carry parameters after ';' ("matrix parameters"); servlet
    # containers strip them before routing, so `/orders/..;/withdrawals` is `/withdrawals`
    # there while it looks like `/orders/*` here. No route needs them: refused.
    if ";" in path:
        raise ValueError("';' in a path segment")
    if "%" in path:
        # '%25' is an encoded '%': `%252e` is `.` to a backend that decodes twice.
        if _PCT_25.search(path):
            raise ValueError("double percent-encoding (%25)")
        # An encoded '.', '/' or '\' spells a separator the upstream may or may not decode.
        if _PCT_SEPARATOR.search(path):
            raise ValueError("encoded separator")
        path = _PCT.sub(_decode_unreserved, path)
        if "%" in _PCT.sub("", path):
            raise ValueError("malformed percent-encoding")
    for segment in path[1:].split("/")[:-1]:
        if segment in ("", ".", ".."):
            raise ValueError("empty or dot segment")
    if path.endswith(("/.", "/..")):
        raise ValueError("dot segment")
    return path


def check_route_path(path: str) -> None:
    """Validate a configured route path (exact, or a prefix ending in `/*`)."""
    if not path.startswith("/"):
        raise ValueError("must start with /")
    base = path[:-1] if path.endswith("/*") else path
    if "*" in base:
        raise ValueError("'*' is allowed only as a final '/*' (a prefix)")
    try:
        canon = canonical_path(base)
    except ValueError as exc:
        raise ValueError(f"not a canonical path ({exc})") from None
    if canon != base or "?" in path or "#" in path:
        raise ValueError("not a canonical path (write it as requests spell it, decoded)")


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    path: str
    scopes: tuple[str, ...] = ()
    step_up: bool = False
    withdrawal: bool = False  # the token must approve one withdrawal (RFC 9396), used once

    @property
    def prefix(self) -> str | None:
        return self.path[:-1] if self.path.endswith("/*") else None


class RouteTable:
    """Looks up the route for a method and a canonical path (None: denied)."""

    def __init__(self, routes: Iterable[Route]) -> None:
        self._exact: dict[tuple[str, str], Route] = {}
        prefixes: list[Route] = []
        for route in routes:
            if route.prefix is None:
                self._exact[(route.method, route.path)] = route
            else:
                prefixes.append(route)
        prefixes.sort(key=lambda r: len(r.path), reverse=True)
        self._prefixes = tuple(prefixes)

    def __len__(self) -> int:
        return len(self._exact) + len(self._prefixes)

    def match(self, method: str, path: str) -> Route | None:
        route = self._exact.get((method, path))
        if route is not None:
            return route
        for candidate in self._prefixes:
            prefix = candidate.prefix
            assert prefix is not None
            if candidate.method == method and path.startswith(prefix):
                return candidate
        return None
