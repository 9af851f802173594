"""A malformed `GET /revocations?since=` cursor (or `limit`) is a 400, never a store error.

Attack: the feed is public. A cursor that matches "digits-digits" but is not a stream id
Redis accepts (more than 64 bits, the very last id, whose exclusive successor does not exist)
used to reach XRANGE, come back as a Redis error and be answered 503 with the
`didauth_redis_errors_total` alert metric bumped: anyone could page the operators (and hide
a real outage in the noise) with one GET. Out-of-range limits were silently clamped.
Now both parameters are checked before the store is touched: 400 `invalid_request`, no
XRANGE sent, no Redis-error metric.
"""

from __future__ import annotations

import httpx
import pytest

from did_auth.adapters.monitoring.metrics import METRICS
from did_auth.services import Services

Api = tuple[httpx.AsyncClient, Services]

BAD_SINCE = [
    "garbage",
    "",
    "1",
    "1-2-3",
    "-1-0",
    "1--1",
    "+1-0",
    " 1-0",
    "1-0 ",
    "01-0",
    "1-00",
    "1.5-0",
    "0x10-0",
    "\u0661-\u0660",  # Arabic-Indic digits match \d in Python regexes
    "99999999999999999999-0",  # 20 digits, more than 2**64 - 1
    "18446744073709551616-0",  # 2**64
    "0-18446744073709551616",
    "18446744073709551615-18446744073709551615",  # the last id: "(" + it has no successor
    "1" * 21 + "-0",
    "1-0" * 200,
]
BAD_LIMIT = ["0", "-1", "1001", "100000", "abc", "1e3", "1.0", "", " 5", "+5", "0x10", "05"]


def _redis_errors() -> float:
    return METRICS.redis_errors.labels().value


@pytest.fixture
def xrange_calls(api: Api, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """Counts the feed reads that reach the store adapter of this app (XRANGE / XINFO on
    Redis): the one path to the stream, and unlike the server-wide command statistics not
    disturbed by other processes using the same Redis."""
    _, svc = api
    store = svc.revocations.store
    count = [0]
    for name in ("feed_read", "feed_head"):
        original = getattr(store, name)

        async def spy(*args, _original=original, **kwargs):  # type: ignore[no-untyped-def]
            count[0] += 1
            return await _original(*args, **kwargs)

        monkeypatch.setattr(store, name, spy)
    return lambda: count[0]


@pytest.mark.parametrize("since", BAD_SINCE)
async def test_malformed_cursor_is_400_without_touching_the_store(
    api: Api, xrange_calls, since: str  # type: ignore[no-untyped-def]
) -> None:
    client, _ = api
    calls, errors = xrange_calls(), _redis_errors()
    r = await client.get("/revocations", params={"since": since})
    assert r.status_code == 400, (since, r.status_code, r.text)
    body = r.json()
    assert body["error"] == "invalid_request" and "since" in body["error_description"]
    assert xrange_calls() == calls, "a malformed cursor reached Redis"
    assert _redis_errors() == errors


@pytest.mark.parametrize("limit", BAD_LIMIT)
async def test_limit_out_of_range_or_not_an_integer_is_400(
    api: Api, xrange_calls, limit: str  # type: ignore[no-untyped-def]
) -> None:
    client, _ = api
    calls, errors = xrange_calls(), _redis_errors()
    r = await client.get("/revocations", params={"limit": limit})
    assert r.status_code == 400, (limit, r.status_code, r.text)
    assert r.json()["error"] == "invalid_request"
    assert xrange_calls() == calls and _redis_errors() == errors


async def test_valid_cursors_and_limits_still_work(
    api: Api, xrange_calls  # type: ignore[no-untyped-def]
) -> None:
    client, _ = api
    first = await client.get("/revocations", params={"limit": "1000"})
    assert first.status_code == 200, first.text
    assert xrange_calls() > 0, "the spy must see a valid read reach the store"
    cursor = first.json()["cursor"]
    for params in (
        {"since": cursor},
        {"since": "0-0", "limit": "1"},
        {"since": "18446744073709551615-0"},  # the largest ms part: empty, not an error
        {"since": "18446744073709551614-18446744073709551615"},
    ):
        r = await client.get("/revocations", params=params)
        assert r.status_code == 200, (params, r.text)
        assert isinstance(r.json()["revoked"], list) and isinstance(r.json()["more"], bool)
