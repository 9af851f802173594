"""Revocation set semantics and the feed follower (cursor, expiry, fail closed)."""

from __future__ import annotations

from typing import Any

import pytest

from did_auth.core.clock import FixedClock
from did_auth.verifier import FeedFollower, RevocationSet, RevocationView, TemporarilyUnavailable

from .conftest import ISSUER, T0

NOW = int(T0)


def claims(**kw: Any) -> dict[str, Any]:
    base = {"jti": "j1", "sid": "s1", "sub": "did:pkh:eip155:1:0xA", "iat": NOW, "auth_time": NOW}
    base.update(kw)
    return base


def test_revocation_set_semantics(clock: FixedClock):
    view = RevocationSet(clock=clock)
    assert isinstance(view, RevocationView)
    assert not view.is_revoked(claims())
    assert view.apply([{"jti": "j1", "exp": NOW + 300}]) == 1
    assert view.is_revoked(claims()) and not view.is_revoked(claims(jti="j2"))
    view.apply([{"sid": "s2", "exp": NOW + 300}])
    assert view.is_revoked(claims(jti="j2", sid="s2"))
    view.apply([{"sub": "did:pkh:eip155:1:0xB", "before": NOW - 10, "exp": NOW + 300}])
    b = "did:pkh:eip155:1:0xB"
    assert view.is_revoked(claims(jti="x", sid="y", sub=b, auth_time=NOW - 10))
    assert not view.is_revoked(claims(jti="x", sid="y", sub=b, auth_time=NOW - 9))
    # without auth_time, iat is used; with neither, the token cannot prove it is newer
    assert view.is_revoked(claims(jti="x", sid="y", sub=b, auth_time=None, iat=NOW - 20))
    assert view.is_revoked(claims(jti="x", sid="y", sub=b, auth_time=None, iat=None))
    # a later cut-off wins; a freeze (no `before`) revokes everything of that subject
    view.apply([{"sub": b, "before": NOW, "exp": NOW + 300}])
    assert view.is_revoked(claims(jti="x", sid="y", sub=b, auth_time=NOW - 9))
    view.apply([{"sub": b, "exp": NOW + 300}])
    assert view.is_revoked(claims(jti="x", sid="y", sub=b, auth_time=NOW + 1000))


def test_malformed_entries_ignored(clock: FixedClock):
    view = RevocationSet(clock=clock)
    accepted = view.apply(
        [
            "nope",
            {"jti": "a"},  # no exp
            {"jti": "a", "sid": "b", "exp": NOW + 1},  # two ids
            {"jti": 5, "exp": NOW + 1},
            {"sub": "u", "before": "yesterday", "exp": NOW + 1},
            {"jti": "old", "exp": NOW - 1000},  # already irrelevant
            {"jti": "ok", "exp": NOW + 1},
        ]
    )
    assert accepted == 1 and len(view) == 1


def test_entries_purged_after_exp(clock: FixedClock):
    view = RevocationSet(clock=clock, grace=60)
    view.apply([{"jti": "j1", "exp": NOW + 10}, {"sub": "u", "exp": NOW + 10}])
    clock.advance(69)
    view.purge()
    assert len(view) == 2
    clock.advance(2)
    view.purge()
    assert len(view) == 0


class FakeFeed:
    def __init__(self) -> None:
        self.pages: list[dict[str, Any]] = []
        self.urls: list[str] = []
        self.down = False

    def fetch(self, url: str) -> Any:
        self.urls.append(url)
        if self.down:
            raise OSError("down")
        if self.pages:
            return self.pages.pop(0)
        return {"revoked": [], "cursor": "c-last"}


def test_follower_cursor_and_pages(clock: FixedClock):
    feed = FakeFeed()
    feed.pages = [
        {"revoked": [{"jti": "j1", "exp": NOW + 300}], "cursor": "c 1"},
        {"revoked": [{"sid": "s9", "exp": NOW + 300}], "cursor": "c2"},
        {"revoked": [], "cursor": "c2"},
    ]
    follower = FeedFollower(ISSUER, clock=clock, fetch=feed.fetch)
    assert follower.poll_once()
    assert feed.urls == [
        f"{ISSUER}/revocations",
        f"{ISSUER}/revocations?since=c%201",
        f"{ISSUER}/revocations?since=c2",
    ]
    assert follower.cursor == "c2"
    assert follower.is_revoked(claims()) and follower.is_revoked(claims(jti="x", sid="s9"))


def test_follower_fails_closed(clock: FixedClock):
    feed = FakeFeed()
    follower = FeedFollower(ISSUER, clock=clock, fetch=feed.fetch, max_lag=30)
    with pytest.raises(TemporarilyUnavailable):
        follower.is_revoked(claims())  # never polled
    assert follower.poll_once()
    assert not follower.is_revoked(claims())
    feed.down = True
    clock.advance(20)
    assert not follower.poll_once()
    assert not follower.is_revoked(claims())  # still within max_lag
    clock.advance(11)
    with pytest.raises(TemporarilyUnavailable):
        follower.is_revoked(claims())
    feed.down = False
    assert follower.poll_once()
    assert not follower.is_revoked(claims())


def test_follower_rejects_bad_documents(clock: FixedClock):
    docs: list[Any] = [[], {"revoked": "x"}, {"revoked": [], "cursor": {"a": 1}}]

    def fetch(url: str) -> Any:
        return docs.pop(0)

    follower = FeedFollower(ISSUER, clock=clock, fetch=fetch)
    assert not follower.poll_once()
    assert not follower.poll_once()
    assert not follower.poll_once()


def test_push_source_uses_apply(clock: FixedClock):
    follower = FeedFollower(ISSUER, clock=clock, fetch=FakeFeed().fetch)
    follower.poll_once()
    follower.apply([{"jti": "pushed", "exp": NOW + 60}])
    assert follower.is_revoked(claims(jti="pushed"))


def test_follower_thread_start_stop():
    import threading

    polled = threading.Event()

    def fetch(url: str) -> Any:
        if "since" in url:
            polled.set()
        return {"revoked": [], "cursor": "c"}

    follower = FeedFollower(ISSUER, fetch=fetch, interval=0.01)
    follower.start()
    try:
        assert polled.wait(5)
        assert follower.is_current()
    finally:
        follower.stop()


def test_insecure_feed_url_refused():
    with pytest.raises(ValueError):
        FeedFollower("http://issuer.example")


def test_follower_ends_on_more_false_not_on_an_empty_page(clock: FixedClock):
    feed = FakeFeed()
    feed.pages = [
        # A page the server filled with nothing live but that is not the end.
        {"revoked": [], "cursor": "c1", "more": True},
        {"revoked": [{"jti": "behind", "exp": NOW + 300}], "cursor": "c2", "more": False},
    ]
    follower = FeedFollower(ISSUER, clock=clock, fetch=feed.fetch, page_size=10)
    assert follower.poll_once() and follower.is_current()
    assert feed.urls == [
        f"{ISSUER}/revocations?limit=10",
        f"{ISSUER}/revocations?since=c1&limit=10",
    ]
    assert follower.is_revoked(claims(jti="behind"))


def test_follower_not_current_before_the_end(clock: FixedClock):
    feed = FakeFeed()
    feed.pages = [{"revoked": [], "cursor": f"c{i}", "more": True} for i in range(5)]
    follower = FeedFollower(ISSUER, clock=clock, fetch=feed.fetch, max_pages=3)
    assert not follower.poll_once() and not follower.is_current()
    assert follower.cursor == "c2"  # progress is kept for the next poll
    with pytest.raises(TemporarilyUnavailable) as info:
        follower.is_revoked(claims())
    assert "not been read to its end" in info.value.description
    feed.pages.append({"revoked": [], "cursor": "end", "more": False})
    assert follower.poll_once() and follower.is_current()


def test_follower_refuses_a_feed_that_says_more_without_advancing(clock: FixedClock):
    def fetch(url: str) -> Any:
        return {"revoked": [], "cursor": "stuck", "more": True}

    follower = FeedFollower(ISSUER, clock=clock, fetch=fetch)
    assert not follower.poll_once()
    assert not follower.is_current()


def test_stale_description_and_max_staleness(clock: FixedClock):
    follower = FeedFollower(ISSUER, clock=clock, fetch=FakeFeed().fetch, max_staleness=30)
    assert follower.max_staleness == 30
    assert follower.poll_once()
    clock.advance(31)
    with pytest.raises(TemporarilyUnavailable) as info:
        follower.is_revoked(claims())
    assert info.value.reason == "revocation_feed_stale"
    assert "revocation feed is stale" in info.value.description
    assert "max_staleness 30 s" in info.value.description
    assert FeedFollower(ISSUER, fetch=FakeFeed().fetch).max_staleness == 30.0
    with pytest.raises(ValueError):
        FeedFollower(ISSUER, fetch=FakeFeed().fetch, interval=30, max_staleness=30)
    with pytest.raises(ValueError):
        FeedFollower(ISSUER, fetch=FakeFeed().fetch, page_size=0)
