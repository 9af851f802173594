"""The revocation stream: `GET /revocations/stream`, the feed pushed as Server-Sent Events.

The same entries as `GET /revocations` (flows/revocations.py), sent as they are written, in
the `text/event-stream` format of the WHATWG HTML standard ("Server-sent events", §9.2):

* each entry is one event: `id:` its feed cursor (the `since` value that resumes after it),
  `data:` the entry's JSON exactly as the feed lists it (one line);
* a position past entries that expired unread is sent as an `id:` field alone (no `data:`,
  so nothing is dispatched; the standard sets the last event ID all the same);
* a cursor beyond the feed's head (the feed started over) is answered as the feed answers
  it, with a reset: `event: reset`, `id: 0-0`, `data: {"reset":true}`, then the feed from
  its start (entries are idempotent);
* a comment line (`: ok`) follows every batch and comes at least every `heartbeat` seconds
  (5 by default; a client may ask for down to 0.5 with `?heartbeat=`): it says "every
  entry written before this line has been sent", so a client that hears one is current,
  and a client that hears nothing for twice that long knows the stream is dead;
* the first bytes are a `retry:` field (milliseconds before a reconnect).

A reconnect with the `Last-Event-ID` header (the standard's own mechanism; or `?since=`)
resumes after that cursor: the entries written meanwhile are replayed from the store's feed,
then the stream goes live, so nothing is lost.

Wakeup: every entry this process writes notifies its open streams at once (`on_append` of
the `RevocationBook`); entries other replicas write wake them through the store
(`Store.feed_wait`: Redis XREAD BLOCK, one blocking read per process while any stream is
open). Each wakeup and each heartbeat reads the feed after the stream's own cursor, so a
missed notification delays an entry by one heartbeat at most, never loses it.

Bounded: at most `max_streams` open streams per process (503 beyond) and `max_per_ip` per
client address (429 beyond); a stream's slot is given back when it ends, whoever ends it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Final

import orjson

from did_auth.core.errors import DidAuthError, InvalidRequest, RateLimited, TemporarilyUnavailable
from did_auth.core.flows.revocations import (
    FEED_LIMIT_MAX,
    FEED_STREAM,
    RevocationBook,
    parse_feed_query,
)
from did_auth.core.ports.store import Store

__all__ = [
    "HEARTBEAT",
    "MIN_HEARTBEAT",
    "FeedSignal",
    "RevocationStream",
    "RevocationStreams",
    "StoreWakeup",
]

log = logging.getLogger("did_auth.revocation_stream")

#: Seconds between heartbeats of an idle stream (a client treats 2x this silence as dead).
HEARTBEAT: Final = 5.0
#: The `retry:` field: milliseconds a client waits before reconnecting.
RETRY_MS: Final = 1000
#: The shortest heartbeat period a client may ask for (`?heartbeat=`).
MIN_HEARTBEAT: Final = 0.5
_DECIMAL: Final = re.compile(r"[0-9]{1,3}(\.[0-9]{1,3})?")
_HEARTBEAT_LINE: Final = b": ok\n\n"
_RESET_EVENT: Final = b'event: reset\nid: 0-0\ndata: {"reset":true}\n\n'
_STORE_RETRY: Final = 1.0


class FeedSignal:
    """Wakes every open stream of this process when the feed may have grown.

    A waiter reads `generation` before it reads the feed and then waits for a later one,
    so a notification that comes while it reads is never lost."""

    def __init__(self) -> None:
        self._generation = 0
        self._event: asyncio.Event | None = None

    @property
    def generation(self) -> int:
        return self._generation

    def notify(self) -> None:
        self._generation += 1
        event, self._event = self._event, None
        if event is not None:
            event.set()

    async def wait(self, seen: int, timeout: float) -> None:
        """Return once the generation is past `seen`, or after `timeout` seconds."""
        if self._generation != seen:
            return
        if self._event is None:
            self._event = asyncio.Event()
        # asyncio.timeout, not wait_for, which on Python 3.11 can drop a cancellation.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._event.wait()


@dataclass(eq=False)
class StoreWakeup:
    """While any stream is open, one task per process blocks on the store's feed
    (`feed_wait`) and notifies the signal when another replica appended an entry."""

    store: Store
    signal: FeedSignal
    _users: int = field(default=0, init=False)
    _task: asyncio.Task[None] | None = field(default=None, init=False)

    def acquire(self) -> None:
        self._users += 1
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="did-auth-revocation-stream-wakeup"
            )

    def release(self) -> None:
        self._users = max(0, self._users - 1)
        if self._users == 0 and self._task is not None:
            self._task.cancel()
            self._task = None

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def _run(self) -> None:
        last: str | None = None
        while True:
            try:
                head = await self.store.feed_wait(FEED_STREAM, last, HEARTBEAT)
            except Exception as exc:  # never end: the streams' own reads fail closed
                if not isinstance(exc, TemporarilyUnavailable):
                    log.warning("revocation stream wakeup: %s", type(exc).__name__)
                await asyncio.sleep(_STORE_RETRY)
                continue
            if head is not None and head != last:
                last = head
                self.signal.notify()


@dataclass(eq=False)
class RevocationStreams:
    """Opens revocation streams within the per-process and per-address bounds."""

    book: RevocationBook
    signal: FeedSignal = field(default_factory=FeedSignal)
    heartbeat: float = HEARTBEAT
    retry_ms: int = RETRY_MS
    max_streams: int = 1000
    max_per_ip: int = 16
    wakeup: StoreWakeup | None = None
    _open: int = field(default=0, init=False)
    _per_ip: dict[str, int] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        if self.wakeup is None:
            self.wakeup = StoreWakeup(self.book.store, self.signal)
        self.book.on_append.append(self.signal.notify)

    @property
    def open_streams(self) -> int:
        return self._open

    def open(
        self, *, since: str | None, last_event_id: str | None, ip: str,
        heartbeat: str | None = None,
    ) -> RevocationStream:
        """A stream resuming after `Last-Event-ID` (else `since`; else from the start).

        `heartbeat`: the seconds between heartbeats the client wants (a decimal from
        `MIN_HEARTBEAT` to the server's own period): a verifier whose `max_staleness` is
        short needs to hear one more often than every 5 s.

        A malformed cursor or heartbeat is 400 `invalid_request` (as at `GET /revocations`);
        beyond the bounds, 503 `temporarily_unavailable` (this process) or 429 `slow_down`
        (this address) — a follower then polls `GET /revocations` instead."""
        # The standard's reconnect: the last event ID the client saw; an empty value
        # means none (an EventSource sends the header only when it has one).
        cursor = last_event_id.strip() if last_event_id and last_event_id.strip() else since
        cursor, _ = parse_feed_query(cursor, None)
        period = self.heartbeat
        if heartbeat is not None:
            if _DECIMAL.fullmatch(heartbeat) is None or not (
                MIN_HEARTBEAT <= float(heartbeat) <= max(MIN_HEARTBEAT, self.heartbeat)
            ):
                raise InvalidRequest(
                    f"heartbeat must be a number of seconds from {MIN_HEARTBEAT:g} to "
                    f"{self.heartbeat:g}"
                )
            period = float(heartbeat)
        if self._open >= self.max_streams:
            raise TemporarilyUnavailable(
                "too many revocation streams are open on this server; poll GET /revocations",
                reason="revocation_streams_full",
            )
        if self._per_ip.get(ip, 0) >= self.max_per_ip:
            raise RateLimited(
                f"at most {self.max_per_ip} revocation streams per client address; "
                "poll GET /revocations",
                retry_after=max(1, int(self.heartbeat)),
                reason="revocation_streams_per_ip",
            )
        self._open += 1
        self._per_ip[ip] = self._per_ip.get(ip, 0) + 1
        assert self.wakeup is not None
        self.wakeup.acquire()
        return RevocationStream(self, cursor, ip, period)

    def _release(self, ip: str) -> None:
        self._open -= 1
        left = self._per_ip.get(ip, 1) - 1
        if left > 0:
            self._per_ip[ip] = left
        else:
            self._per_ip.pop(ip, None)
        assert self.wakeup is not None
        self.wakeup.release()

    async def close(self) -> None:
        if self.wakeup is not None:
            await self.wakeup.close()


class RevocationStream:
    """One open stream: `events()` yields the bytes to send; `close()` gives the slot back
    (idempotent; also done when `events()` ends)."""

    def __init__(
        self, owner: RevocationStreams, cursor: str | None, ip: str, heartbeat: float
    ) -> None:
        self._owner = owner
        self.cursor = cursor
        self.heartbeat = heartbeat
        self._ip = ip
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._owner._release(self._ip)

    async def events(self) -> AsyncIterator[bytes]:
        owner = self._owner
        try:
            first = b"retry: %d\n\n" % owner.retry_ms
            while not self._closed:
                seen = owner.signal.generation  # before reading: no lost wakeup
                try:
                    async for chunk in self._drain():
                        yield first + chunk
                        first = b""
                except DidAuthError as exc:
                    # The feed cannot be read (store down): end the stream rather than
                    # send a heartbeat that would vouch for a view nobody checked.
                    log.warning("revocation stream ended: %s", exc.reason or exc.code)
                    return
                yield first + _HEARTBEAT_LINE
                first = b""
                await owner.signal.wait(seen, self.heartbeat)
        finally:
            self.close()

    async def _drain(self) -> AsyncIterator[bytes]:
        """The entries after the cursor, a page at a time, up to the end of the feed."""
        book = self._owner.book
        last_id = self.cursor
        while True:
            page = await book.page(self.cursor, FEED_LIMIT_MAX)
            out: list[bytes] = []
            if page.reset:
                out.append(_RESET_EVENT)
                last_id = "0-0"
            for row_cursor, entry in page.rows:
                out.append(b"id: %s\ndata: %s\n\n" % (row_cursor.encode(), orjson.dumps(entry)))
                last_id = row_cursor
            if page.cursor != last_id:
                out.append(b"id: %s\n\n" % page.cursor.encode())  # past expired entries
                last_id = page.cursor
            self.cursor = page.cursor
            if out:
                yield b"".join(out)
            if not page.more:
                return
