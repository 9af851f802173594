"""Revocation views for the verifier, and a follower of the issuer's revocation feed.

Feed (interface: `GET /revocations?since=CURSOR`): `{"revoked": [entry, ...], "cursor": C,
"more": M}` where each entry names exactly one of

* `{"jti": J, "exp": T}`: that token is revoked;
* `{"sid": S, "exp": T}`: every token of login session S is revoked;
* `{"sub": U, "before": B, "exp": T}`: every token of subject U whose `auth_time` (or, when
  absent, `iat`) is <= B is revoked (`RevocationRegistry.revokeAll`);
* `{"sub": U, "exp": T}` (no `before`): every token of U is revoked (compliance freeze);
* `{"all": true, "before": B, "exp": T}` (no jti/sid/sub): every token whose `auth_time`
  (or, when absent, `iat`) is <= B is revoked, whoever its subject (`did-auth sessions
  revoke-all`, an incident). Verifiers older than this kind ignore the entry with the
  warning "needs exactly one of jti/sid/sub" and stay current, so did-auth also announces
  every session it ends that way by `sid`.

`exp` is when the entry stops mattering: the latest expiry of any token it can kill. Entries
are kept until then (plus a grace period covering clock leeway) and then purged.

The first request is sent without `since`; afterwards the last `cursor` is echoed back.
A page with `"reset": true` says the cursor sent is beyond the issuer's feed (it started
over, e.g. a restart of an issuer on its in-memory store): the page is from the start of the
feed and its cursor replaces ours (no cursor: the next request starts from the start).
`more: false` marks the end of the feed (an issuer that does not send `more` is at its end
when a page leaves the cursor where it was). `apply(entries)` is public so that a push
source (e.g. Redis pub/sub) can feed the same view.

Fail closed: the follower is *current* only once it has read the feed to its end; its view
dates from the start of that last request. `FeedFollower.is_revoked` raises
`TemporarilyUnavailable` (reason `revocation_feed_stale`, 503 at the FastAPI guard) until
the first complete read and whenever the view is older than `max_staleness` seconds
(default 30): a verifier that cannot know whether a token was revoked must not accept it.
"""

from __future__ import annotations

import http.client
import json
import logging
import random
import threading
import time
from collections.abc import Iterable, Mapping
from typing import Any, Protocol, runtime_checkable
from urllib.parse import quote

from did_auth_verifier._http import JsonFetch, check_url, make_fetch
from did_auth_verifier.clock import Clock, SystemClock
from did_auth_verifier.errors import TemporarilyUnavailable
from did_auth_verifier.sse import Comment, EventStream, SseEvent, StreamRefused

__all__ = ["DEFAULT_MAX_STALENESS", "FeedFollower", "RevocationSet", "RevocationView"]

log = logging.getLogger("did_auth_verifier.revocations")


@runtime_checkable
class RevocationView(Protocol):
    def is_revoked(self, claims: Mapping[str, Any]) -> bool:
        """True when the token with these (verified) claims must be rejected as revoked.

        May raise `TemporarilyUnavailable` when the view cannot answer (fail closed).
        """
        ...


def _number(value: object) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


class RevocationSet:
    """In-memory, thread-safe revocation view fed through `apply(entries)`."""

    def __init__(
        self, *, clock: Clock | None = None, grace: float = 120.0, max_entries: int = 1_000_000
    ) -> None:
        self._clock: Clock = clock if clock is not None else SystemClock()
        self._grace = float(grace)
        self._max = max_entries
        self._lock = threading.Lock()
        self._jti: dict[str, float] = {}
        self._sid: dict[str, float] = {}
        # sub -> (before or None for "all tokens", exp)
        self._sub: dict[str, tuple[float | None, float]] = {}
        # The `all` entry: (before, exp), the latest cut-off, or None.
        self._all: tuple[float, float] | None = None

    def __len__(self) -> int:
        return len(self._jti) + len(self._sid) + len(self._sub) + (self._all is not None)

    def apply(self, entries: Iterable[Mapping[str, Any]]) -> int:
        """Add revocation entries (feed or push); returns how many were accepted."""
        accepted = 0
        now = self._clock.now()
        with self._lock:
            for entry in entries:
                if not isinstance(entry, Mapping):
                    log.warning("revocation entry ignored: not an object")
                    continue
                exp = _number(entry.get("exp"))
                if exp is None:
                    log.warning("revocation entry ignored: no numeric exp")
                    continue
                if exp + self._grace <= now:
                    continue  # every token it could kill has already expired
                jti, sid, sub = entry.get("jti"), entry.get("sid"), entry.get("sub")
                named = [v for v in (jti, sid, sub) if v is not None]
                if "all" in entry:
                    every = _number(entry.get("before"))
                    if entry.get("all") is not True or every is None or named:
                        log.warning("revocation entry ignored: malformed 'all' entry")
                        continue
                    if self._all is not None:  # the later cut-off and the later exp
                        every, exp = max(every, self._all[0]), max(exp, self._all[1])
                    self._all = (every, exp)
                    accepted += 1
                    continue
                if len(named) != 1 or not isinstance(named[0], str) or not named[0]:
                    log.warning("revocation entry ignored: needs exactly one of jti/sid/sub")
                    continue
                if isinstance(jti, str):
                    self._jti[jti] = max(exp, self._jti.get(jti, exp))
                elif isinstance(sid, str):
                    self._sid[sid] = max(exp, self._sid.get(sid, exp))
                else:
                    assert isinstance(sub, str)
                    raw_before = entry.get("before")
                    before = _number(raw_before)
                    if raw_before is not None and before is None:
                        log.warning("revocation entry ignored: non-numeric before")
                        continue
                    old = self._sub.get(sub)
                    if old is not None:
                        old_before, old_exp = old
                        # "all tokens" (None) dominates any cut-off; otherwise the later cut-off.
                        if old_before is None or before is None:
                            before = None
                        else:
                            before = max(before, old_before)
                        exp = max(exp, old_exp)
                    self._sub[sub] = (before, exp)
                accepted += 1
            if len(self) > self._max:
                self._purge_locked(now)
        return accepted

    def purge(self) -> None:
        """Drop entries whose tokens have all expired."""
        with self._lock:
            self._purge_locked(self._clock.now())

    def _purge_locked(self, now: float) -> None:
        limit = now - self._grace
        for table in (self._jti, self._sid):
            for key in [k for k, exp in table.items() if exp <= limit]:
                del table[key]
        for key in [k for k, (_, exp) in self._sub.items() if exp <= limit]:
            del self._sub[key]
        if self._all is not None and self._all[1] <= limit:
            self._all = None

    def is_revoked(self, claims: Mapping[str, Any]) -> bool:
        jti = claims.get("jti")
        if isinstance(jti, str) and jti in self._jti:
            return True
        sid = claims.get("sid")
        if isinstance(sid, str) and sid in self._sid:
            return True
        every = self._all
        if every is not None and _before_covers(every[0], claims):
            return True
        sub = claims.get("sub")
        if isinstance(sub, str):
            entry = self._sub.get(sub)
            if entry is not None:
                before = entry[0]
                return before is None or _before_covers(before, claims)
        return False


def _before_covers(before: float, claims: Mapping[str, Any]) -> bool:
    """The one cut-off rule (`revokeAll`'s `before`, the `all` entry's): the token's
    `auth_time` (or, when absent, `iat`) is <= `before`. No usable time: it cannot be proven
    newer than the cut-off -> revoked."""
    when = _number(claims.get("auth_time"))
    if when is None:
        when = _number(claims.get("iat"))
    return when is None or when <= before


DEFAULT_MAX_STALENESS = 30.0


#: Seconds with no byte at all (event or heartbeat) after which a stream is taken as dead:
#: did-auth sends a heartbeat at least every 5 s.
DEFAULT_STREAM_TIMEOUT = 10.0
# Statuses that say the issuer has no stream (an older did-auth): ask again much later.
_NO_STREAM = frozenset({404, 405, 406, 415, 501})
_NO_STREAM_RETRY = 300.0
_STREAM_BACKOFF_MAX = 30.0


class FeedFollower(RevocationSet):
    """Follows `GET {base_url}/revocations?since=CURSOR` and implements `RevocationView`.

    `poll_once()` reads the feed to its end (tests drive it directly); `start()` does that
    now and then follows it in a daemon thread; `stop()` ends it.

    Push by default (`stream=True`): the thread follows `GET {base_url}/revocations/stream`
    (Server-Sent Events, `did_auth_verifier.sse`), each event applied as it comes and the
    cursor taken from its id, resuming with `Last-Event-ID` after any reconnect so nothing is
    lost; the view is current while heartbeats arrive (every comment line vouches for every
    entry written before it). A stream silent for `stream_timeout` seconds (10) is dead. When
    the issuer has no stream (404/405), refuses one (429/503) or cannot be reached, the
    thread polls every `interval` seconds and tries the stream again later (backing off).
    `stream=False` forces polling; with a custom `fetch` (a transport of the caller's own)
    polling is the default, since the stream would not go through it.

    `max_staleness` (seconds, default 30): how old the view may be before every token is
    refused (fail closed); must exceed `interval`. `max_lag` is its former name. `page_size`:
    the `limit` sent with each request (None: the issuer's default). `max_pages`: pages read
    per poll; a poll that stops before the end does not make the follower current, the next
    poll continues from the cursor.
    """

    def __init__(
        self,
        base_url: str,
        *,
        interval: float = 1.0,
        clock: Clock | None = None,
        fetch: JsonFetch | None = None,
        max_staleness: float | None = None,
        max_lag: float | None = None,
        timeout: float = 5.0,
        grace: float = 120.0,
        max_pages: int = 1000,
        page_size: int | None = None,
        allow_insecure_http: bool = False,
        stream: bool | None = None,
        stream_timeout: float = DEFAULT_STREAM_TIMEOUT,
    ) -> None:
        super().__init__(clock=clock, grace=grace)
        if stream_timeout <= 0:
            raise ValueError("stream_timeout must be positive")
        if interval <= 0:
            raise ValueError("interval must be positive")
        if max_staleness is None:
            max_staleness = max_lag if max_lag is not None else DEFAULT_MAX_STALENESS
        if max_staleness <= interval:
            raise ValueError("max_staleness must be longer than the poll interval")
        if max_pages < 1:
            raise ValueError("max_pages must be at least 1")
        if page_size is not None and not 1 <= page_size <= 1000:
            raise ValueError("page_size must be between 1 and 1000")
        self._url = check_url(
            base_url.rstrip("/") + "/revocations", allow_insecure_http=allow_insecure_http
        )
        self._stream_url = self._url + "/stream"
        self._stream_enabled = stream if stream is not None else fetch is None
        self._stream_timeout = float(stream_timeout)
        self._stream: EventStream | None = None
        self._streaming = False
        self.stream_connects = 0
        self._interval = float(interval)
        self._fetch = fetch if fetch is not None else make_fetch(timeout=timeout)
        self._max_staleness = float(max_staleness)
        self._max_pages = max_pages
        self._page_size = page_size
        self._cursor: str | None = None
        self._resets = 0
        self._last_success = float("-inf")
        self._poll_lock = threading.Lock()
        self._start_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def cursor(self) -> str | None:
        return self._cursor

    @property
    def resets(self) -> int:
        """How often the issuer answered that our cursor was beyond its feed (`reset`)."""
        return self._resets

    @property
    def last_success(self) -> float:
        return self._last_success

    @property
    def max_staleness(self) -> float:
        return self._max_staleness

    @property
    def started(self) -> bool:
        return self._thread is not None

    @property
    def streaming(self) -> bool:
        """Whether an event stream is connected now (else the follower polls)."""
        return self._streaming

    @property
    def stream_enabled(self) -> bool:
        return self._stream_enabled

    def is_current(self) -> bool:
        return self._clock.now() - self._last_success <= self._max_staleness

    def is_revoked(self, claims: Mapping[str, Any]) -> bool:
        if not self.is_current():
            if self._last_success == float("-inf"):
                description = (
                    "the revocation feed has not been read to its end yet; "
                    "tokens are refused until it is"
                )
            else:
                age = self._clock.now() - self._last_success
                description = (
                    f"the revocation feed is stale: last read to its end {age:.0f} s ago "
                    f"(max_staleness {self._max_staleness:g} s); tokens are refused until "
                    "it catches up"
                )
            raise TemporarilyUnavailable(description, reason="revocation_feed_stale")
        return super().is_revoked(claims)

    def poll_once(self) -> bool:
        """Read pages until the end of the feed (at most `max_pages`).

        True (and current) only when the end was reached: a page with `more: false`, or,
        from an issuer that does not send `more`, a page that leaves the cursor unchanged.
        Entries and the cursor of every page read are kept even when the poll stops early.
        """
        with self._poll_lock:
            try:
                for _ in range(self._max_pages):
                    started = self._clock.now()
                    document = self._fetch(self._page_url())
                    if not isinstance(document, Mapping):
                        raise ValueError("feed response is not an object")
                    entries = document.get("revoked")
                    cursor = document.get("cursor")
                    more = document.get("more")
                    reset = document.get("reset", False)
                    if not isinstance(entries, list):
                        raise ValueError("feed response has no 'revoked' array")
                    if cursor is not None and not isinstance(cursor, str | int):
                        raise ValueError("feed cursor is not a string")
                    if more is not None and not isinstance(more, bool):
                        raise ValueError("feed 'more' is not a boolean")
                    if not isinstance(reset, bool):
                        raise ValueError("feed 'reset' is not a boolean")
                    self.apply(entries)
                    previous = self._cursor
                    if reset:
                        # Our cursor is beyond the issuer's feed (it started over): the page
                        # is from its start, and so is our position now. Entries are
                        # idempotent and revocations never undone, so the view is kept.
                        self._resets += 1
                        log.warning("revocation feed: the issuer's feed started over; "
                                    "re-reading it from the start")
                        self._cursor = str(cursor) if cursor is not None else None
                    elif cursor is not None:
                        self._cursor = str(cursor)
                    at_end = (not more) if more is not None else self._cursor == previous
                    if at_end:
                        # The view now holds every entry written before `started`.
                        self._last_success = started
                        self.purge()
                        return True
                    if self._cursor == previous and not entries and not reset:
                        raise ValueError("feed says there is more but does not advance")
            except Exception as exc:
                log.warning("revocation feed poll failed: %s", type(exc).__name__)
                return False
            log.warning("revocation feed: not at its end after %d pages", self._max_pages)
            return False

    def _page_url(self) -> str:
        params = []
        if self._cursor is not None:
            params.append("since=" + quote(self._cursor, safe=""))
        if self._page_size is not None:
            params.append(f"limit={self._page_size}")
        return self._url + ("?" + "&".join(params) if params else "")

    def start(self) -> None:
        """Poll once now, then keep polling in a daemon thread (idempotent, thread-safe)."""
        with self._start_lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._stop.clear()
            self.poll_once()
            self._thread = threading.Thread(
                target=self._run, name="did-auth-revocation-feed", daemon=True
            )
            self._thread.start()

    def stop(self, timeout: float | None = 5.0) -> None:
        self._stop.set()
        stream = self._stream
        if stream is not None:
            stream.abort()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout)

    def _run(self) -> None:
        retry_at = time.monotonic()  # when to try the stream (again)
        failures = 0
        while not self._stop.is_set():
            if self._stream_enabled and time.monotonic() >= retry_at:
                delay, healthy = self._follow_stream()
                failures = 0 if healthy else failures + 1
                if not healthy and delay is None:  # back off, with jitter
                    delay = min(_STREAM_BACKOFF_MAX, self._interval * 2**failures)
                    delay *= random.uniform(0.5, 1.0)
                retry_at = time.monotonic() + (delay or 0.0)
            wait = self._interval
            if self._stream_enabled:
                wait = min(wait, max(0.0, retry_at - time.monotonic()))
            if self._stop.wait(wait):
                return
            self.poll_once()  # between streams (and after each one): never a gap

    def _follow_stream(self) -> tuple[float | None, bool]:
        """Follow the event stream until it ends; (seconds before the next attempt or None
        to back off, whether it was healthy: connected and heard at least one heartbeat)."""
        # Heartbeats often enough that the view never ages past a quarter of max_staleness
        # between two of them (did-auth sends one every 5 s unless asked for more), and a
        # silence of two periods is a dead stream.
        heartbeat = min(5.0, max(0.5, self._max_staleness / 4))
        stream = EventStream(
            f"{self._stream_url}?heartbeat={heartbeat:.2f}",
            last_event_id=self._cursor,
            timeout=min(self._stream_timeout, max(1.0, 2 * heartbeat)),
        )
        self._stream = stream
        heard = False
        try:
            if self._stop.is_set():
                return None, False
            stream.open()
            self.stream_connects += 1
            self._streaming = True
            for item in stream.items():
                if isinstance(item, Comment):
                    # A heartbeat: everything written before it has been sent (and applied).
                    heard = True
                    self._last_success = self._clock.now()
                    continue
                self._on_event(item)
        except StreamRefused as exc:
            if exc.status in _NO_STREAM:
                log.info("revocation stream unavailable (HTTP %s); polling", exc.status)
                return _NO_STREAM_RETRY, False
            log.warning("revocation stream refused (HTTP %s); polling", exc.status)
            return exc.retry_after, False
        except (OSError, ValueError, http.client.HTTPException) as exc:  # TimeoutError: silent
            if not self._stop.is_set():
                log.warning("revocation stream ended: %s", type(exc).__name__)
        finally:
            self._streaming = False
            self._stream = None
            stream.close()
        retry = stream.parser.retry_ms
        return (retry / 1000.0 if retry is not None else 1.0) if heard else None, heard

    def _on_event(self, event: SseEvent) -> None:
        if event.type == "reset":
            # The cursor sent was beyond the issuer's feed (it started over): it replays
            # from its start; the view is kept (entries are idempotent, never undone).
            self._resets += 1
            log.warning("revocation feed: the issuer's feed started over; re-reading it")
        elif event.data is not None:
            try:
                entry = json.loads(event.data)
            except ValueError:
                log.warning("revocation stream event ignored: not JSON")
                return
            self.apply(entry if isinstance(entry, list) else [entry])
        if event.last_event_id:
            self._cursor = event.last_event_id
