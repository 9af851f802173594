"""The OpenAPI description and its browsable form at /docs, on a live `did-auth serve`:
every request body described (the OAuth forms too), the 400 error model and never FastAPI's
422 (did-auth never sends it), and Swagger UI served from the package with no CDN under a
Content-Security-Policy of 'self'."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import httpx
import pytest

from tests.fixtures.servers import LiveServer, start_server, stop_server


@pytest.fixture(scope="module")
def server() -> Iterator[LiveServer]:
    srv = start_server({})
    yield srv
    stop_server(srv)


def test_the_description_has_every_body_and_the_real_error_model(server: LiveServer) -> None:
    schema = httpx.get(server.url + "/openapi.json").json()
    assert "422" not in json.dumps(schema["paths"])
    assert "HTTPValidationError" not in schema["components"]["schemas"]
    for path in ("/token", "/revoke", "/introspect"):
        body = schema["paths"][path]["post"]["requestBody"]["content"]
        form = body["application/x-www-form-urlencoded"]["schema"]
        assert form["required"] and form["properties"], path
    for path, operations in schema["paths"].items():
        for method, op in operations.items():
            # POST /userinfo reads only the Authorization header (OIDC Core §5.3.1).
            if method == "post" and path != "/userinfo":
                assert "requestBody" in op, f"{method} {path} has no request body"
            bad = op["responses"].get("400")
            if bad and "application/json" in bad.get("content", {}):
                ref = bad["content"]["application/json"]["schema"]["$ref"]
                assert ref == "#/components/schemas/Error", (path, method)
    error = schema["components"]["schemas"]["Error"]
    assert error["required"] == ["error", "error_description"]


def test_docs_are_served_without_any_cdn(server: LiveServer) -> None:
    page = httpx.get(server.url + "/docs")
    assert page.status_code == 200
    csp = page.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "unsafe-inline" not in csp and "http" not in csp
    # Nothing from elsewhere, no inline script; every asset loads from this server.
    assert re.search(r"(src|href)=\"(https?:)?//", page.text) is None
    assert "<script>" not in page.text
    assets = re.findall(r"(?:src|href)=\"(/[^\"]+)\"", page.text)
    assert any(a.endswith("swagger-ui-bundle.js") for a in assets)
    for asset in assets:
        r = httpx.get(server.url + asset)
        assert r.status_code == 200 and r.content, asset
    assert "/openapi.json" in httpx.get(server.url + "/docs/init.js").text
