"""`GET /revocations/stream` on real `did-auth serve` processes sharing one Redis (replicas A
and B): Server-Sent Events (WHATWG HTML §9.2) carrying the feed's entries with the feed's
cursors as event ids, resumed by `Last-Event-ID`, heartbeats, the feed's access rules and
reset, bounded streams whose slots come back when clients leave, and a graceful shutdown
that does not wait for open streams."""

from __future__ import annotations

import json
import os
import signal
import time

import httpx

from tests.fixtures.servers import config_dict, start_server, stop_server
from tests.revocation.sse import Sse, StreamServers, is_heartbeat, login_and_revoke, names
from tests.waits import wait_until

#: Generous for a loaded 2-core CI box; the benchmark measures the real figure.
DELIVERY_BOUND = 2.0


def test_event_stream_headers_retry_and_heartbeats(stream_servers: StreamServers) -> None:
    with Sse(stream_servers.a.url) as sse:
        r = sse.response
        assert r.status_code == 200
        assert r.headers["content-type"].split(";")[0] == "text/event-stream"
        assert r.headers["cache-control"] == "no-store"
        assert r.headers["x-accel-buffering"] == "no"
        assert sse.next_block() == {"retry": "1000"}
        sse.caught_up()
        # Idle: the next heartbeat within 5 s (+ slack), so 10 s of silence means dead.
        started = time.monotonic()
        sse.until(is_heartbeat, timeout=8)
        assert time.monotonic() - started <= 6.5


def test_a_revoke_reaches_an_open_stream_promptly(stream_servers: StreamServers) -> None:
    with Sse(stream_servers.a.url) as sse:
        sse.caught_up()
        started = time.monotonic()
        claims = login_and_revoke(stream_servers.a)
        revoked = time.monotonic()
        sse.until(lambda b: bool(names(b) & {claims["jti"], claims["sid"]}), what="the revoke")
        assert time.monotonic() - revoked < DELIVERY_BOUND, time.monotonic() - started


def test_a_revoke_on_one_replica_reaches_a_stream_on_the_other(
    stream_servers: StreamServers,
) -> None:
    with Sse(stream_servers.b.url) as sse:
        sse.caught_up()
        claims = login_and_revoke(stream_servers.a)
        revoked = time.monotonic()
        sse.until(lambda b: bool(names(b) & {claims["jti"], claims["sid"]}), what="the revoke")
        assert time.monotonic() - revoked < DELIVERY_BOUND


def test_reconnect_with_last_event_id_loses_nothing(stream_servers: StreamServers) -> None:
    a = stream_servers.a
    login_and_revoke(a)  # the feed is not empty
    with Sse(a.url) as sse:
        sse.caught_up()
        last = sse.last_id
    assert last is not None
    # Revoked while no stream is open:
    missed = [login_and_revoke(a) for _ in range(3)]
    wanted = {c["jti"] for c in missed} | {c["sid"] for c in missed}
    for how in ({"last_event_id": last}, {"since": last}):
        with Sse(stream_servers.b.url, **how) as sse:
            replay = sse.caught_up()
        got = set().union(*(names(b) for b in replay))
        assert wanted <= got, how
        # Only what came after the cursor, in feed order (ids are the feed's cursors).
        ids = [b["id"] for b in replay if "data" in b]
        assert ids == sorted(ids, key=lambda c: tuple(map(int, c.split("-"))))
        assert all(tuple(map(int, i.split("-"))) > tuple(map(int, last.split("-"))) for i in ids)


def test_the_stream_replays_exactly_the_feed(stream_servers: StreamServers) -> None:
    """Same entries, same order, same cursors as `GET /revocations` (whose access rules it
    shares: the feed is public — entries name only opaque sids and jtis — so is the stream;
    an Authorization header changes neither)."""
    a = stream_servers.a
    login_and_revoke(a)
    bogus = {"Authorization": "Bearer not-a-token"}
    page = httpx.get(a.url + "/revocations", params={"since": "1-0", "limit": 1000}, headers=bogus)
    assert page.status_code == 200
    doc = page.json()
    with Sse(a.url, since="1-0") as sse:
        replay = sse.caught_up()
    events = [b for b in replay if "data" in b]
    assert [json.loads(b["data"]) for b in events][: len(doc["revoked"])] == doc["revoked"]
    assert doc["more"] or events[len(doc["revoked"]) - 1]["id"] == doc["cursor"]


def test_a_malformed_cursor_is_400_like_the_feed(stream_servers: StreamServers) -> None:
    a = stream_servers.a
    feed = httpx.get(a.url + "/revocations", params={"since": "nope"})
    bad = ({"last_event_id": "nope"}, {"since": "nope"}, {"last_event_id": "1-99999999999999999999"})
    for how in bad:
        with Sse(a.url, **how) as sse:
            assert sse.response.status_code == 400 == feed.status_code, how
            sse.response.read()
            assert sse.response.json()["error"] == "invalid_request" == feed.json()["error"]


def test_a_cursor_beyond_the_head_gets_the_feeds_reset(stream_servers: StreamServers) -> None:
    a = stream_servers.a
    login_and_revoke(a)
    ahead = "18446744073709551614-0"
    doc = httpx.get(a.url + "/revocations", params={"since": ahead}).json()
    assert doc["reset"] is True
    with Sse(a.url, last_event_id=ahead) as sse:
        replay = sse.caught_up()
    assert replay[0] == {"event": "reset", "id": "0-0", "data": '{"reset":true}'}
    entries = [json.loads(b["data"]) for b in replay[1:] if "data" in b]
    assert entries[: len(doc["revoked"])] == doc["revoked"]  # from the start, as the feed
    # A cursor older than anything kept is no reset (the feed is trimmed by age only after
    # every token an entry covers has expired: nothing a verifier needs is gone), for the
    # feed and the stream alike.
    assert "reset" not in httpx.get(a.url + "/revocations", params={"since": "1-0"}).json()
    with Sse(a.url, last_event_id="1-0") as sse:
        assert all(b.get("event") != "reset" for b in sse.caught_up())


def test_streams_are_bounded_and_slots_come_back_when_clients_leave(
    stream_servers: StreamServers,
) -> None:
    a, b = stream_servers.a, stream_servers.b
    held = [Sse(a.url) for _ in range(4)]
    try:
        for sse in held:
            sse.caught_up()
        with Sse(a.url) as over:  # a fifth from the same address
            assert over.response.status_code == 429
            assert int(over.response.headers["retry-after"]) >= 1
            over.response.read()
            assert over.response.json()["error"] == "slow_down"
        held.pop().close()  # a client leaves: its slot is free again

        def opens() -> bool:
            with Sse(a.url) as again:
                return again.response.status_code == 200

        wait_until(opens, timeout=10, what="the closed stream's slot to come back")
    finally:
        for sse in held:
            sse.close()
    held = [Sse(b.url) for _ in range(3)]  # B: 3 streams in all
    try:
        for sse in held:
            sse.caught_up()
        with Sse(b.url) as over:
            assert over.response.status_code == 503
            over.response.read()
            assert over.response.json()["error"] == "temporarily_unavailable"
    finally:
        for sse in held:
            sse.close()


def test_a_graceful_shutdown_does_not_wait_for_open_streams(
    stream_servers: StreamServers,
) -> None:
    server = start_server(
        config_dict(redis_url=stream_servers.redis_url, key_encryption_key_file=stream_servers.kek)
    )
    try:
        with Sse(server.url) as sse:
            sse.caught_up()
            started = time.monotonic()
            os.killpg(server.proc.pid, signal.SIGTERM)
            server.proc.wait(8)  # it would wait forever for the stream to end otherwise
            assert time.monotonic() - started < 8
            try:
                while True:
                    sse.next_block()
            except (StopIteration, httpx.HTTPError):
                pass  # the stream ended with the server; a client reconnects elsewhere
    finally:
        if server.proc.poll() is None:
            stop_server(server)
