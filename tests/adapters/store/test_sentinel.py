"""Redis Sentinel specifics of the store: the URL, and single-use writes that are only
acknowledged once the primary's replica holds them (the contract itself runs against
Sentinel in test_store_contract.py)."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import tempfile
import time
from pathlib import Path

import pytest

from did_auth.adapters.store.redis import RedisStore, parse_sentinel_url
from did_auth.config.check import redis_url_problem
from did_auth.core.errors import TemporarilyUnavailable
from tests.fixtures.redis_sentinel import RedisSentinel


def test_sentinel_url_names_sentinels_service_and_db() -> None:
    t = parse_sentinel_url("redis+sentinel://u:p%40ss@10.0.0.1:26379,[::1]:26380/mymaster/3")
    assert t.sentinels == [("10.0.0.1", 26379), ("::1", 26380)]
    assert t.service == "mymaster"
    assert t.opts["db"] == 3 and t.opts["username"] == "u" and t.opts["password"] == "p@ss"
    assert t.wait_replicas == 1 and "ssl" not in t.opts
    t = parse_sentinel_url("rediss+sentinel://h:1/svc?wait_replicas=0&socket_keepalive=true")
    assert t.opts["db"] == 0 and t.opts["ssl"] is True and t.wait_replicas == 0
    assert t.opts["socket_keepalive"] is True


@pytest.mark.parametrize("url", [
    "redis+sentinel://h:1", "redis+sentinel://h:1/", "redis+sentinel://h:1/svc/x",
    "redis+sentinel://h:1/svc/0/extra", "redis+sentinel://h/svc",
    "redis+sentinel://h:1/svc?wait_replicas=many",
])
def test_bad_sentinel_urls_are_refused(url: str) -> None:
    with pytest.raises(ValueError):
        parse_sentinel_url(url)


def test_check_config_accepts_sentinel_urls_and_names_the_service() -> None:
    assert redis_url_problem("redis+sentinel://a:26379,b:26379/mymaster", sentinel=True) is None
    assert redis_url_problem("rediss+sentinel://a:26379/mymaster/2", sentinel=True) is None
    problem = redis_url_problem("redis+sentinel://a:26379", sentinel=True)
    assert problem is not None and "service" in problem
    problem = redis_url_problem("redis+sentinel://a:26379/svc/x", sentinel=True)
    assert problem is not None and "number" in problem


async def test_consumption_not_acknowledged_until_the_replica_has_it() -> None:
    """A stalled replica (SIGSTOP: still connected, never acknowledging): consuming a nonce
    fails with 503 instead of answering for a write the replica, if promoted, would lack."""
    topo = RedisSentinel(Path(tempfile.mkdtemp(prefix="did-auth-sentinel-wait-")))
    store = None
    try:
        topo.start()
        store = RedisStore.from_url(topo.url(db=1), timeout=0.5)
        assert await store.put("n", b"client", 10)
        assert await store.take("n") == b"client"  # replica acknowledges: fine
        await store.put("m", b"client", 10)
        await store.put("s", b"v1", 10)
        replica = next(p for p in topo.data_ports if p != topo.primary_port())
        os.kill(topo.procs[replica].pid, signal.SIGSTOP)
        try:
            started = time.monotonic()
            with pytest.raises(TemporarilyUnavailable):
                await store.take("m", expect=b"client")
            with pytest.raises(TemporarilyUnavailable):
                await store.swap("s", b"v1", b"v2", 10)
            assert time.monotonic() - started < 5
        finally:
            os.kill(topo.procs[replica].pid, signal.SIGCONT)
        # the replica caught up: the consumption that was refused an answer did happen on
        # the primary (a retry sees the nonce gone, never a second success)
        await asyncio.sleep(0.2)
        assert await store.take("m", expect=b"client") is None
        assert await store.get("s") == b"v2"
    finally:
        if store is not None:
            await store.close()
        topo.stop()
        shutil.rmtree(topo.workdir, ignore_errors=True)
