"""application/x-www-form-urlencoded bodies for the OAuth endpoints (RFC 6749 §3.2)."""

from __future__ import annotations

from urllib.parse import parse_qsl

from fastapi import Request

from did_auth.errors import InvalidRequest

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


def required(form: dict[str, str], name: str) -> str:
    value = form.get(name)
    if not value:
        raise InvalidRequest(f"missing parameter: {name}")
    return value


def basic_credentials(request: Request, form: dict[str, str]) -> tuple[str, str]:
    """RFC 6749 §2.3.1: HTTP Basic (preferred) or client_id/client_secret in the body."""
    import base64
    import binascii
    from urllib.parse import unquote

    from did_auth.errors import InvalidClient

    auth = request.headers.get("authorization", "")
    if auth[:6].lower() == "basic ":
        try:
            raw = base64.b64decode(auth[6:].strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise InvalidClient("malformed Basic credentials") from None
        name, sep, secret = raw.partition(":")
        if not sep:
            raise InvalidClient("malformed Basic credentials")
        return unquote(name), unquote(secret)
    if "client_id" in form and "client_secret" in form:
        return form["client_id"], form["client_secret"]
    raise InvalidClient("resource server credentials are required")
