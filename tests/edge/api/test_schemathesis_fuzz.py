"""Fuzz every operation of the served OpenAPI description (`/openapi.json`) with schemathesis
against a real `did-auth serve` process.

Pass criteria: no response is a 5xx, and every error response of the API is the one error
shape `{"error", "error_description"}` (strings). The browser pages (`/authorize`,
`/signin`) answer a bad request with an HTML page by design (OIDC Core §3.1.2.6: an
unverified redirect URI is never redirected to), so for them an error may be a 4xx HTML
page. Bounded and deterministic: a fixed number of schema-conforming and of non-conforming
requests per operation, a fixed seed (Hypothesis `derandomize`), no example database, no
shrinking.

schemathesis drives Hypothesis directly here (`APIOperation.as_strategy`), not through its
pytest plugin, which does not run under pytest 9.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from tests.fixtures.servers import LiveServer, config_dict, start_server, stop_server

MAX_EXAMPLES = 20
HTML_PAGES = frozenset({"/authorize", "/signin"})

FUZZ_CLIENT = {
    "client_id": "dapp",
    "domains": ["localhost:3000"],
    "uris": ["http://localhost:3000"],
    "chain_ids": [1, 31337],
    "audiences": ["trading-api"],
    "scopes": ["account:read", "trade:write"],
    "default_scopes": ["account:read"],
    "redirect_uris": ["http://127.0.0.1:8123/callback"],
}


@pytest.fixture(scope="module")
def fuzz_server() -> Iterator[LiveServer]:
    server = start_server(config_dict(clients=[FUZZ_CLIENT]))
    yield server
    stop_server(server)


def content_type(response: Any) -> str:
    value = response.headers.get("content-type", "")
    return str(value[0] if isinstance(value, list) else value)


def check_response(case: Any, response: Any) -> None:
    status = response.status_code
    where = f"{case.method} {case.path} -> {status}"
    curl = case.as_curl_command()
    assert status < 500, f"{where}: server error {response.text[:300]}\n{curl}"
    if status < 400:
        return
    ctype = content_type(response)
    if case.path in HTML_PAGES and ctype.startswith("text/html"):
        return
    assert ctype.startswith("application/json"), f"{where}: error body is {ctype!r}\n{curl}"
    body = response.json()
    assert isinstance(body, dict), f"{where}: {body!r}\n{curl}"
    assert isinstance(body.get("error"), str) and body["error"], f"{where}: {body!r}\n{curl}"
    assert isinstance(body.get("error_description"), str), f"{where}: {body!r}\n{curl}"


def known_client(case: Any) -> Any:
    """Half of the requests name the registered client (and its redirect URI), so they get
    past client lookup into the flows' own parsing (SIWE text, DID proofs, grants, PKCE)."""
    for part in (case.body, case.query):
        if isinstance(part, dict):
            if isinstance(part.get("client_id"), str):
                part["client_id"] = FUZZ_CLIENT["client_id"]
            if isinstance(part.get("redirect_uri"), str):
                part["redirect_uri"] = FUZZ_CLIENT["redirect_uris"][0]
    return case


def fuzz_operation(operation: Any, mode: GenerationMode, base_url: str) -> str | None:
    """Send MAX_EXAMPLES generated requests; the first failure's text, or None."""
    session = requests.Session()
    cases = operation.as_strategy(generation_mode=mode)

    @given(case=st.one_of(cases, cases.map(known_client)))
    @settings(
        max_examples=MAX_EXAMPLES,
        derandomize=True,  # a fixed seed: the same requests on every run
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],  # no shrinking: bounded time
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any) -> None:
        check_response(case, case.call(base_url=base_url, session=session, timeout=15))

    try:
        run()
    except AssertionError as exc:
        return f"[{mode.value}] {operation.label}: {exc}"
    except Unsatisfiable:
        # Nothing in this operation can be made non-conforming (no parameters, no body).
        assert mode is GenerationMode.NEGATIVE, operation.label
    finally:
        session.close()
    return None


def test_openapi_fuzz_no_5xx_and_one_error_shape(fuzz_server: LiveServer) -> None:
    schema = schemathesis.openapi.from_url(f"{fuzz_server.url}/openapi.json")
    # The revocation stream never ends (a heartbeat every few seconds): a client that reads
    # whole bodies would wait forever; its answers are tested in tests/revocation.
    operations = [
        op for result in schema.get_all_operations()
        if (op := result.ok()).path != "/revocations/stream"
    ]
    assert len(operations) >= 20
    failures = [
        failure
        for operation in operations
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
        if (failure := fuzz_operation(operation, mode, fuzz_server.url)) is not None
    ]
    assert not failures, "\n\n".join(failures)


def test_unknown_routes_and_methods_use_the_error_shape(fuzz_server: LiveServer) -> None:
    for method, path, status in (
        ("GET", "/no/such/route", 404),
        ("DELETE", "/token", 405),
        ("PUT", "/siwe/nonce", 405),
    ):
        r = httpx.request(method, fuzz_server.url + path)
        assert r.status_code == status, (method, path, r.status_code)
        body = r.json()
        assert isinstance(body["error"], str) and isinstance(body["error_description"], str)


def test_openapi_describes_the_form_endpoints_and_one_error_shape(fuzz_server: LiveServer) -> None:
    doc = httpx.get(f"{fuzz_server.url}/openapi.json").json()
    assert doc["components"]["schemas"]["Error"]["required"] == ["error", "error_description"]
    for path, operations in doc["paths"].items():
        for method, op in operations.items():
            assert "422" not in op["responses"], (method, path)  # bad input is 400
    for path in ("/token", "/revoke", "/introspect"):
        body = doc["paths"][path]["post"]["requestBody"]["content"]
        assert "application/x-www-form-urlencoded" in body, path
    token_form = doc["paths"]["/token"]["post"]["requestBody"]["content"][
        "application/x-www-form-urlencoded"
    ]["schema"]
    assert token_form["properties"]["grant_type"]["enum"] == ["authorization_code", "refresh_token"]
    assert "client_assertion" in token_form["properties"]  # RFC 7523 private_key_jwt
    names = {p["name"] for p in doc["paths"]["/authorize"]["get"]["parameters"]}
    assert {"client_id", "redirect_uri", "code_challenge", "dpop_jkt"} <= names
    assert doc["paths"]["/userinfo"]["get"]["security"] == [{"accessToken": []}]
