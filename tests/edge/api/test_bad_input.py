"""Bad input: always a clear 4xx in the documented format, never a 5xx, never a state change."""

from __future__ import annotations

import httpx
import pytest

from did_auth.services import Services
from tests import siwe_text
from tests.edge.api.test_siwe_flow import nonce

Api = tuple[httpx.AsyncClient, Services]

GOOD_SIG = "0x" + "11" * 65


def _assert_error(r: httpx.Response, status: int | tuple[int, ...], code: str | None = None) -> None:
    statuses = (status,) if isinstance(status, int) else status
    assert r.status_code in statuses, (r.status_code, r.text)
    body = r.json()
    assert set(body) == {"error", "error_description"}, body
    if code:
        assert body["error"] == code, body
    assert "Traceback" not in r.text


@pytest.mark.parametrize(
    "content",
    [b"{", b"[]", b"null", b'"x"', b"\xff\xfe", b'{"client_id": 5}', b'{"client_id": ""}', b"{}"],
)
async def test_malformed_nonce_requests(api: Api, content: bytes) -> None:
    client, _ = api
    r = await client.post("/siwe/nonce", content=content, headers={"content-type": "application/json"})
    _assert_error(r, 400, "invalid_request")


async def test_unknown_client(api: Api) -> None:
    client, _ = api
    _assert_error(await client.post("/siwe/nonce", json={"client_id": "nobody"}), 401, "invalid_client")


async def test_huge_body_rejected(api: Api) -> None:
    client, _ = api
    r = await client.post("/siwe/verify", content=b'{"a":"' + b"x" * 200_000 + b'"}',
                          headers={"content-type": "application/json"})
    _assert_error(r, 413, "invalid_request")


@pytest.mark.parametrize(
    ("signature", "code"),
    [
        ("0x", "invalid_request"),
        ("zz", "invalid_request"),
        ("0xzz" + "00" * 64, "invalid_request"),
        ("0x123", "invalid_request"),
        ("0x" + "00" * 65, "invalid_grant"),
        ("0x" + "ff" * 65, "invalid_grant"),
        ("0x" + "11" * 64, "invalid_grant"),
        ("0x" + "11" * 66, "invalid_grant"),
        ("0x" + "11" * 300, "invalid_grant"),
    ],
)
async def test_bad_signatures_are_clean_errors_and_keep_nonce(api: Api, signature: str, code: str) -> None:
    client, _ = api
    address, key = siwe_text.new_account()
    n = await nonce(client)
    text = siwe_text.message(address, n)
    r = await client.post("/siwe/verify", json={"client_id": "dapp", "message": text, "signature": signature})
    assert r.status_code == 400, r.text
    assert r.json()["error"] in (code, "invalid_request", "invalid_grant")
    _assert_error(r, 400)
    ok = await client.post(
        "/siwe/verify", json={"client_id": "dapp", "message": text, "signature": siwe_text.sign(text, key)}
    )
    assert ok.status_code == 200, ok.text


@pytest.mark.parametrize(
    "message",
    [
        "hello",
        "localhost:3000 wants you to sign in with your Ethereum account:\n0xnothex",
        "\x00" * 100,
        "x" * 20_000,
    ],
)
async def test_malformed_messages(api: Api, message: str) -> None:
    client, _ = api
    r = await client.post("/siwe/verify", json={"client_id": "dapp", "message": message, "signature": GOOD_SIG})
    _assert_error(r, 400, "invalid_request")


async def test_missing_fields(api: Api) -> None:
    client, _ = api
    _assert_error(await client.post("/siwe/verify", json={"client_id": "dapp"}), 400, "invalid_request")
    _assert_error(
        await client.post("/siwe/verify", json={"client_id": "dapp", "message": "x", "signature": 5}),
        400, "invalid_request",
    )


@pytest.mark.parametrize(
    ("data", "headers", "code"),
    [
        ({"grant_type": "refresh_token"}, None, "invalid_request"),
        # RFC 6749 §5.2: a grant type the server does not support is unsupported_grant_type.
        ({"grant_type": "password", "client_id": "dapp"}, None, "unsupported_grant_type"),
        ({"grant_type": "refresh_token", "client_id": "dapp", "refresh_token": "nope"}, None, "invalid_grant"),
        (None, {"content-type": "application/json"}, "invalid_request"),
    ],
)
async def test_token_endpoint_errors(api: Api, data: dict | None, headers: dict | None, code: str) -> None:  # type: ignore[type-arg]
    client, _ = api
    if data is None:
        r = await client.post("/token", content=b"{}", headers=headers)
    else:
        r = await client.post("/token", data=data)
    _assert_error(r, 400, code)


async def test_repeated_form_parameter_rejected(api: Api) -> None:
    client, _ = api
    r = await client.post(
        "/token", content=b"grant_type=refresh_token&grant_type=refresh_token&client_id=dapp",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    _assert_error(r, 400, "invalid_request")


async def test_unknown_route_and_method(api: Api) -> None:
    client, _ = api
    assert (await client.get("/nope")).status_code == 404
    assert (await client.get("/siwe/verify")).status_code == 405
