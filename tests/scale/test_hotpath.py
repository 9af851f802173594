"""The login hot path (did_auth/edge/api/hotpath.py) answers exactly as the FastAPI routes do.

`application/json` requests take the hot path; `application/vnd.api+json` is JSON to
FastAPI but not to the hot path, so the same request through both paths can be compared:
successes, flow errors (with their headers), validation errors and the metrics."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from did_auth.edge.api import hotpath
from tests import siwe_text
from tests.fixtures.servers import running_app, settings_for

HOT = {"content-type": "application/json"}
SLOW = {"content-type": "application/vnd.api+json"}
VOLATILE = {"x-request-id", "content-length"}


@pytest.fixture
async def client(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[httpx.AsyncClient, list[str]]]:
    taken: list[str] = []
    original = hotpath.HotPaths.__call__

    async def spy(self, scope, receive, send):  # type: ignore[no-untyped-def]
        # the hot path answered when the request never reached the FastAPI app inside it
        inner, reached = self.app, []

        async def app(s, r, se):  # type: ignore[no-untyped-def]
            reached.append(True)
            await inner(s, r, se)

        self.app = app
        try:
            await original(self, scope, receive, send)
        finally:
            self.app = inner
        if not reached:
            taken.append(scope["path"])

    monkeypatch.setattr(hotpath.HotPaths, "__call__", spy)
    settings = settings_for(
        rate_limits={"nonce_per_ip": "3/h", "verify_per_ip": "100/h"}, metrics_public=True
    )
    async with running_app(settings) as (c, _):
        yield c, taken


def _headers(r: httpx.Response) -> dict[str, str]:
    return {k: v for k, v in r.headers.items() if k not in VOLATILE}


async def _post(c: httpx.AsyncClient, path: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
    return await c.post(path, content=body, headers=headers)


async def test_success_and_errors_match_the_fastapi_routes(
    client: tuple[httpx.AsyncClient, list[str]],
) -> None:
    c, taken = client
    fast = await _post(c, "/siwe/nonce", b'{"client_id": "dapp"}', HOT)
    slow = await _post(c, "/siwe/nonce", b'{"client_id": "dapp"}', SLOW)
    assert fast.status_code == slow.status_code == 200
    assert _headers(fast) == _headers(slow) and fast.json().keys() == slow.json().keys()
    assert taken == ["/siwe/nonce"]
    # a flow error: the third nonce is the last of 3/h; then 429 with the same headers
    assert (await _post(c, "/siwe/nonce", b'{"client_id": "dapp"}', HOT)).status_code == 200
    fast = await _post(c, "/siwe/nonce", b'{"client_id": "dapp"}', HOT)
    slow = await _post(c, "/siwe/nonce", b'{"client_id": "dapp"}', SLOW)
    assert fast.status_code == slow.status_code == 429
    assert fast.json() == slow.json()
    assert {k for k in _headers(fast)} == {k for k in _headers(slow)}
    assert "ratelimit" in fast.headers and "retry-after" in fast.headers
    # validation errors are FastAPI's own, through either content type
    for body in (b'{"client_id": 7}', b"{not json", b"[]", b'{"message": "x"}'):
        fast = await _post(c, "/siwe/verify", body, HOT)
        slow = await _post(c, "/siwe/verify", body, SLOW)
        assert fast.status_code == slow.status_code == 400
        assert fast.json() == slow.json()


async def test_login_through_the_hot_path_and_replay(
    client: tuple[httpx.AsyncClient, list[str]],
) -> None:
    c, taken = client
    before = _verify_requests((await c.get("/metrics")).text)
    address, key = siwe_text.new_account()
    n = (await _post(c, "/siwe/nonce", b'{"client_id": "dapp"}', HOT)).json()["nonce"]
    text = siwe_text.message(address, n)
    body = {"client_id": "dapp", "message": text, "signature": siwe_text.sign(text, key)}
    ok = await c.post("/siwe/verify", json=body)
    assert ok.status_code == 200 and ok.headers["cache-control"] == "no-store"
    assert ok.json()["token_type"] == "Bearer"
    replay_fast = await c.post("/siwe/verify", json=body)
    replay_slow = await c.post("/siwe/verify", content=httpx.Request("POST", "/", json=body).content,
                               headers=SLOW)
    assert replay_fast.status_code == replay_slow.status_code == 400
    assert replay_fast.json() == replay_slow.json() == {
        "error": "invalid_grant", "error_description": "nonce already used"}
    assert taken.count("/siwe/verify") == 2  # the login and the hot replay
    # the request metrics label hot-path requests with their route template
    after = _verify_requests((await c.get("/metrics")).text)
    assert after - before == 3


def _verify_requests(metrics: str) -> float:
    """All requests counted for route /siwe/verify (the registry is process-wide)."""
    return sum(
        float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
        if line.startswith("didauth_http_requests_total{") and 'route="/siwe/verify"' in line
    )
