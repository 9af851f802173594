"""application/x-www-form-urlencoded bodies for the OAuth endpoints (RFC 6749 §3.2)."""

from __future__ import annotations

from urllib.parse import parse_qsl

from fastapi import Request

from did_auth.core.errors import InvalidRequest

__all__ = ["read_form"]


async def read_form(request: Request) -> dict[str, str]:
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/x-www-form-urlencoded":
        raise InvalidRequest("expected application/x-www-form-urlencoded")
    raw = await request.body()
    try:
        text = raw.decode("utf-8")
        pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=bool(text))
    except (UnicodeDecodeError, ValueError):
        raise InvalidRequest("malformed form body") from None
    form: dict[str, str] = {}
    for k, v in pairs:
        # RFC 6749 §3.1: request parameters MUST NOT be included more than once.
        if k in form:
            raise InvalidRequest(f"parameter repeated: {k}")
        form[k] = v
    return form
