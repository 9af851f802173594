"""Default JSON GET used by the JWKS cache and the revocation feed follower (stdlib only).

Hardening (learned from PyJWT's `PyJWKClient` defaults and RFC 8725 §3.10's SSRF warning):
only `https` URLs, or `http` to a loopback host, unless explicitly allowed; redirects are
not followed (a redirect could point the verifier at keys chosen by someone else); bounded
response size and timeout; no cookies or credentials are ever sent.
"""

from __future__ import annotations

import ipaddress
import urllib.request
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from did_auth_verifier.jose import JoseError, json_loads

__all__ = ["JsonFetch", "check_url", "default_fetch", "make_fetch"]

JsonFetch = Callable[[str], Any]
"""Fetches a URL and returns the decoded JSON document; raises on any failure."""

MAX_RESPONSE_BYTES = 1 << 20


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _is_loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_url(url: str, *, allow_insecure_http: bool = False) -> str:
    """Validate a configured URL: https (or http to loopback / when explicitly allowed)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = parts.hostname or ""
    if scheme not in ("http", "https") or not host:
        raise ValueError(f"unsupported URL {url!r}: need an absolute http(s) URL")
    if parts.username is not None or parts.password is not None:
        raise ValueError("credentials in URLs are not supported")
    if scheme == "http" and not allow_insecure_http and not _is_loopback(host):
        raise ValueError(
            f"refusing plain-http URL {url!r} for a non-loopback host; use https "
            "(or pass allow_insecure_http=True for a trusted private network)"
        )
    return url


def make_fetch(*, timeout: float = 5.0, max_bytes: int = MAX_RESPONSE_BYTES) -> JsonFetch:
    opener = urllib.request.build_opener(_NoRedirect)

    def fetch(url: str) -> Any:
        scheme = urlsplit(url).scheme.lower()
        if scheme not in ("http", "https"):  # never file:, ftp:, data:
            raise ValueError("unsupported URL scheme")
        request = urllib.request.Request(  # noqa: S310 - scheme checked above
            url, headers={"Accept": "application/json", "User-Agent": "did-auth-verifier"}
        )
        with opener.open(request, timeout=timeout) as response:
            status = getattr(response, "status", 200)
            if status != 200:
                raise OSError(f"HTTP {status}")
            body = response.read(max_bytes + 1)
        if len(body) > max_bytes:
            raise OSError("response too large")
        try:
            return json_loads(body)
        except (ValueError, TypeError, JoseError) as exc:
            raise OSError("response is not JSON") from exc

    return fetch


default_fetch: JsonFetch = make_fetch()
