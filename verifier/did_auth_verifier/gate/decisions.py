"""Remembered allow decisions: the gate's warm path for bearer tokens.

A gateway sees the same bearer token on the same route many times a second. The verifier's
own warm cache saves the signature check; this one saves the rest of the decision, which
depends only on

* the request's `Authorization` header, original method and URI (the cache key),
* the time (the token's `exp`; with step-up, `auth_time + step_up_max_age`): an entry is
  used only before the earliest of these,
* the revocation view: `FollowedFeed` counts every `apply()` of feed entries (polled or
  pushed); an entry is used only while that count is what it was before the verifier
  decided, and only while the view is current (not older than `max_staleness`: fail closed
  exactly as the verifier does),
* the issuer's keys: an entry is used only while the JWKS generation is unchanged.

Requests with a `DPoP` header are never answered from here: each proof is single use
(RFC 9449 §11.1) and is checked every time. Only allow decisions are kept; a denial is
decided afresh. Bounded: the oldest entry goes when full.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Generic, TypeVar

from did_auth_verifier.jwks import JWKSCache
from did_auth_verifier.revocations import FeedFollower

__all__ = ["Decisions", "FollowedFeed"]

A = TypeVar("A")


class FollowedFeed(FeedFollower):
    """The verifier's `FeedFollower`, counting the batches of entries applied to the view."""

    generation = 0

    def apply(self, entries: Iterable[Mapping[str, Any]]) -> int:
        entries = list(entries)
        try:
            return super().apply(entries)
        finally:
            if entries:
                self.generation += 1


class Decisions(Generic[A]):
    def __init__(self, jwks: JWKSCache, feed: FollowedFeed | None, clock_now: Any,
                 max_entries: int = 10_000) -> None:
        self._jwks = jwks
        self._feed = feed
        self._now = clock_now
        self._max = max_entries
        self._entries: dict[tuple[str, str, str], tuple[A, float, int, int]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def state(self) -> tuple[int, int]:
        """Read before deciding: what the view and the keys were when the decision was made."""
        feed = self._feed
        return (feed.generation if feed is not None else 0), self._jwks.generation

    def get(self, key: tuple[str, str, str]) -> A | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        answer, until, feed_gen, jwks_gen = entry
        feed = self._feed
        now = self._now()
        if (
            now < until
            and jwks_gen == self._jwks.generation
            # the view as current as FeedFollower.is_current demands (fail closed)
            and (feed is None or (feed_gen == feed.generation
                                  and now - feed.last_success <= feed.max_staleness))
        ):
            return answer
        del self._entries[key]
        return None

    def put(self, key: tuple[str, str, str], answer: A, until: float,
            state: tuple[int, int]) -> None:
        entries = self._entries
        if key not in entries and len(entries) >= self._max:
            del entries[next(iter(entries))]
        entries[key] = (answer, until, state[0], state[1])
