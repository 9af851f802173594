"""The store's own multiplexed Redis connection (single node): RESP parsing, replies matched
in order under concurrency and cancellation, timeouts and reconnects failing closed."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator

import pytest

from did_auth.adapters.store import resp
from did_auth.adapters.store.redis import RedisStore
from did_auth.adapters.store.resp import PyReader
from did_auth.core.errors import TemporarilyUnavailable
from tests.fixtures.redis_server import RedisServer


def test_pure_python_reader_handles_fragments_and_every_type() -> None:
    wire = (b"+OK\r\n:-42\r\n$5\r\nhello\r\n$-1\r\n*2\r\n$1\r\na\r\n*2\r\n:1\r\n$0\r\n\r\n"
            b"*-1\r\n-NOSCRIPT No matching script\r\n")
    reader = PyReader()
    got = []
    for i in range(len(wire)):  # one byte at a time
        reader.feed(wire[i : i + 1])
        while (reply := reader.gets()) is not False:
            got.append(reply)
    assert got[:6] == [b"OK", -42, b"hello", None, [b"a", [1, b""]], None]
    assert isinstance(got[6], Exception) and str(got[6]).startswith("NOSCRIPT")
    assert reader.gets() is False
    # a long stream of pipelined replies never fully drained keeps the buffer bounded
    big = b"$70000\r\n" + b"x" * 70000 + b"\r\n"
    stream = big * 5 + b":1\r\n"
    seen = []
    for i in range(0, len(stream) - 3, 4096):
        reader.feed(stream[i : i + 4096])
        while (reply := reader.gets()) is not False:
            seen.append(reply)
        assert len(reader._buf) < 2 * 70000 + 4096
    reader.feed(stream[i + 4096 :])
    while (reply := reader.gets()) is not False:
        seen.append(reply)
    assert seen == [b"x" * 70000] * 5 + [1]


@pytest.fixture(params=["hiredis", "python"])
def reader_kind(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "python":
        monkeypatch.setattr(resp, "_HiredisReader", None)
        monkeypatch.setattr(resp, "_hiredis_pack", None)
    return str(request.param)


async def test_store_round_trip_with_either_reader(
    reader_kind: str, redis_server: RedisServer
) -> None:
    store = RedisStore.from_url(redis_server.url)
    key = f"da:{{fast:{reader_kind}}}"
    assert await store.put(key, b"v\r\n\x00", 10)
    assert await store.get(key) == b"v\r\n\x00"
    assert await store.swap(key, b"v\r\n\x00", b"w", 10)
    assert await store.take(key) == b"w"
    assert await store.incr(key + ":c", 10) == 1
    assert await store.cap_add(key + ":z", "m", 5, 10) and await store.members(key + ":z") == ["m"]
    cursor = await store.feed_append(key + ":f", b"e1", keep_for=10)
    assert await store.feed_read(key + ":f", None, 10) == [(cursor, b"e1")]
    await store.close()


async def test_concurrent_and_cancelled_callers_get_their_own_replies(
    redis_server: RedisServer,
) -> None:
    store = RedisStore.from_url(redis_server.url)
    keys = [f"da:{{fast:c{i}}}" for i in range(200)]
    await asyncio.gather(*[store.put(k, k.encode(), 10) for k in keys])
    tasks = [asyncio.create_task(store.get(k)) for k in keys]
    for t in tasks[::3]:
        t.cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    for k, t, r in zip(keys, tasks, results, strict=True):
        assert isinstance(r, asyncio.CancelledError) if t.cancelled() else r == k.encode()
    assert await asyncio.gather(*[store.get(k) for k in keys]) == [k.encode() for k in keys]
    await store.close()


@pytest.fixture
def silent_server() -> Iterator[int]:
    """Accepts connections and never answers (a hung Redis)."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    conns: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        srv.settimeout(0.1)
        while not stop.is_set():
            try:
                conns.append(srv.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield srv.getsockname()[1]
    stop.set()
    thread.join()
    for c in conns:
        c.close()
    srv.close()


async def test_a_hung_redis_fails_closed(silent_server: int) -> None:
    store = RedisStore.from_url(f"redis://127.0.0.1:{silent_server}/0", timeout=0.3)
    with pytest.raises(TemporarilyUnavailable):
        await store.get("da:{x}")
    results = await asyncio.gather(*[store.get("da:{x}") for _ in range(5)],
                                   return_exceptions=True)
    assert all(isinstance(r, TemporarilyUnavailable) for r in results)
    await store.close()


def test_one_store_used_from_two_event_loops(redis_server: RedisServer) -> None:
    store = RedisStore.from_url(redis_server.url)
    assert asyncio.run(store.put("da:{fast:loop}", b"1", 10))
    assert asyncio.run(store.get("da:{fast:loop}")) == b"1"  # reconnects in the new loop
    asyncio.run(store.close())


async def test_database_number_and_password_in_the_url(redis_server: RedisServer) -> None:
    other_db = RedisStore.from_url(redis_server.url[:-1] + "7")
    default_db = RedisStore.from_url(redis_server.url)
    assert await other_db.put("da:{fast:db}", b"seven", 10)
    assert await default_db.get("da:{fast:db}") is None
    assert await other_db.get("da:{fast:db}") == b"seven"
    wrong = RedisStore.from_url(f"redis://:nope@127.0.0.1:{redis_server.port}/0")
    with pytest.raises(TemporarilyUnavailable):  # AUTH without a configured password
        await wrong.get("da:{fast:db}")
    for s in (other_db, default_db, wrong):
        await s.close()
