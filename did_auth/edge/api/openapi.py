"""The served OpenAPI description (`/openapi.json`): FastAPI's, completed with what it cannot
see from the handlers.

- One error shape: every API error is `{"error", "error_description"}` (`Error`), with the
  status codes did-auth answers (malformed input is 400, never FastAPI's 422).
- The form-encoded OAuth endpoints (`/token`, `/revoke`, `/introspect`, POST `/authorize`)
  read their bodies by hand (RFC 6749 §3.2); their parameters are described here.
- The browser pages (`/authorize`, `/signin`) take query parameters and answer HTML.
- Bearer/DPoP access tokens (RFC 6750, RFC 9449) and client authentication (RFC 6749 §2.3).
"""

from __future__ import annotations

from typing import Any, Final

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

__all__ = ["install_openapi"]

_ERROR_REF: Final = {"$ref": "#/components/schemas/Error"}
_STR: Final = {"type": "string"}
_HTML: Final = {"text/html": {"schema": {"type": "string"}}}

_DESCRIPTIONS: Final = {
    "400": "Malformed or invalid request (RFC 6749 §5.2 codes at the token endpoint)",
    "401": "Missing, invalid or expired credentials (invalid_token, invalid_client)",
    "403": "Authenticated but not allowed (insufficient_scope, access_denied)",
    "404": "Not found",
    "413": "Request body too large",
    "429": "Rate limited (Retry-After)",
    "503": "A dependency (store or chain RPC) is unavailable; retry later",
}

_AUTHORIZE_PARAMS: Final = {
    "response_type": {"type": "string", "enum": ["code"]},
    "client_id": _STR,
    "redirect_uri": _STR,
    "scope": _STR,
    "state": _STR,
    "nonce": _STR,
    "code_challenge": _STR,
    "code_challenge_method": {"type": "string", "enum": ["S256"]},
    "dpop_jkt": _STR,
    "prompt": _STR,
    "max_age": _STR,
    "login_hint": _STR,
}
_CLIENT_AUTH_PARAMS: Final = {
    "client_id": _STR,
    "client_secret": _STR,
    "client_assertion_type": {
        "type": "string",
        "enum": ["urn:ietf:params:oauth:client-assertion-type:jwt-bearer"],
    },
    "client_assertion": _STR,
}
_FORMS: Final[dict[tuple[str, str], tuple[dict[str, Any], list[str]]]] = {
    ("/token", "post"): (
        {
            "grant_type": {"type": "string", "enum": ["authorization_code", "refresh_token"]},
            "code": _STR,
            "redirect_uri": _STR,
            "code_verifier": _STR,
            "refresh_token": _STR,
            "scope": _STR,
            **_CLIENT_AUTH_PARAMS,
        },
        ["grant_type"],
    ),
    ("/revoke", "post"): (
        {
            "token": _STR,
            "token_type_hint": {"type": "string", "enum": ["access_token", "refresh_token"]},
            **_CLIENT_AUTH_PARAMS,
        },
        ["token"],
    ),
    ("/introspect", "post"): (
        {"token": _STR, "token_type_hint": _STR, **_CLIENT_AUTH_PARAMS},
        ["token"],
    ),
    ("/authorize", "post"): (dict(_AUTHORIZE_PARAMS), []),
}
_QUERY: Final[dict[tuple[str, str], dict[str, Any]]] = {
    ("/authorize", "get"): _AUTHORIZE_PARAMS,
    ("/signin", "get"): {
        "client_id": _STR,
        "scope": _STR,
        "audience": _STR,
        "return_to": _STR,
        "origin": _STR,
    },
}
# Routes that read an access token from `Authorization: Bearer|DPoP`.
_BEARER: Final = frozenset(
    {
        "/userinfo",
        "/otp/enroll",
        "/otp/confirm",
        "/transactions/nonce",
        "/transactions/authorize",
    }
)
_CLIENT_AUTH: Final = frozenset({"/token", "/revoke", "/introspect"})
_PAGES: Final = frozenset({"/authorize", "/signin"})
# Operations that take no input: only what they document (readyz: 503 when not ready).
_NO_INPUT: Final = frozenset(
    {
        "/.well-known/openid-configuration",
        "/.well-known/oauth-authorization-server",
        "/.well-known/jwks.json",
        "/metrics",
        "/healthz",
    }
)


def _error(code: str) -> dict[str, Any]:
    return {
        "description": _DESCRIPTIONS[code],
        "content": {"application/json": {"schema": _ERROR_REF}},
    }


def _describe(schema: dict[str, Any]) -> None:
    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas["Error"] = {
        "type": "object",
        "required": ["error", "error_description"],
        "properties": {"error": _STR, "error_description": _STR},
    }
    # FastAPI's 422 never happens: validation errors are 400 with the one error shape.
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    components["securitySchemes"] = {
        "accessToken": {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "An RFC 9068 access token; DPoP-bound ones use the DPoP scheme "
            "and a DPoP proof header (RFC 9449 §7)",
        },
        "clientBasic": {
            "type": "http",
            "scheme": "basic",
            "description": "client_secret_basic: id and secret form-urlencoded, then Base64 "
            "(RFC 6749 §2.3.1); or client_secret_post / private_key_jwt in the form",
        },
    }
    for path, operations in schema.get("paths", {}).items():
        for method, op in operations.items():
            _describe_operation(path, method, op)


def _describe_operation(path: str, method: str, op: dict[str, Any]) -> None:
    responses: dict[str, Any] = op.setdefault("responses", {})
    responses.pop("422", None)
    form = _FORMS.get((path, method))
    if form is not None:
        properties, required = form
        body_schema: dict[str, Any] = {"type": "object", "properties": dict(properties)}
        if required:
            body_schema["required"] = list(required)
        op["requestBody"] = {
            "required": True,
            "content": {"application/x-www-form-urlencoded": {"schema": body_schema}},
        }
    query = _QUERY.get((path, method))
    if query is not None:
        op["parameters"] = [
            {"name": name, "in": "query", "required": False, "schema": s}
            for name, s in query.items()
        ]
    if path in _BEARER:
        op["security"] = [{"accessToken": []}]
    elif path in _CLIENT_AUTH:
        op["security"] = [{"clientBasic": []}, {}]
    if path in _PAGES:
        responses["200"] = {"description": "The sign-in page", "content": dict(_HTML)}
        if path == "/authorize":
            responses["302"] = {
                "description": "Redirect to the client with an error (RFC 6749 §4.1.2.1)"
            }
        responses["400"] = {
            "description": "Invalid request shown to the user (never redirected)",
            "content": dict(_HTML),
        }
        responses["429"] = _error("429")
        responses["503"] = _error("503")
        return
    if path == "/readyz":
        responses["503"] = {"description": "Not ready: the same report, with the failing parts"}
        return
    if path in _NO_INPUT:
        return
    for code in ("400", "429", "503"):
        responses.setdefault(code, _error(code))
    if "requestBody" in op:
        responses.setdefault("413", _error("413"))
    if path in _BEARER or path in _CLIENT_AUTH:
        responses.setdefault("401", _error("401"))
    if path in _BEARER:
        responses.setdefault("403", _error("403"))


def install_openapi(app: FastAPI) -> None:
    """Serve the completed description at `/openapi.json` (built once, on first use)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description="Decentralized-identity authentication provider (SIWE, DID, "
                "OpenID Connect code flow) issuing RFC 9068 access tokens. Every error is "
                '`{"error", "error_description"}`.',
                routes=app.routes,
            )
            _describe(schema)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
