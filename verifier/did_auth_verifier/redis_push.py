"""Revocations pushed from did-auth's Redis pub/sub channel into a verifier's view.

did-auth publishes every revocation feed entry (`{"sid"|"jti"|"sub", "exp", ...}`, the same
JSON as `GET /revocations`) on the Redis channel `da:revocations` the moment it is
written. A trading API that can reach that Redis subscribes here and learns of a
revocation in milliseconds instead of at its next feed poll:

    from did_auth_verifier import FeedFollower
    from did_auth_verifier.redis_push import RedisPush

    feed = FeedFollower("https://auth.example", interval=5.0)
    push = RedisPush("redis://auth-redis:6379/0", feed)
    feed.start(); push.start()          # a daemon thread with its own event loop
    ...
    push.stop(); feed.stop()

or `await push.run()` as a task of an asyncio application. Pub/sub is fire-and-forget:
messages sent while disconnected are lost, so push is an accelerator, never the only
source. Keep following the feed (its cursor catches up after any gap, and `FeedFollower`
fails closed when the feed itself is stale).

Not imported by `did_auth_verifier` (whose import stays free of redis); `redis.asyncio` is
imported only when `run()` starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
from typing import Any

from did_auth_verifier.revocations import RevocationSet

__all__ = ["DEFAULT_CHANNEL", "RedisPush"]

log = logging.getLogger("did_auth_verifier.redis_push")

#: did-auth's channel (`did_auth.core.flows.revocations.FEED_CHANNEL`, not imported: server code).
DEFAULT_CHANNEL = "da:revocations"
_MAX_MESSAGE = 64 * 1024


class RedisPush:
    """Subscribes to the revocation channel and `apply()`s each entry to `view`."""

    def __init__(
        self,
        redis_url: str,
        view: RevocationSet,
        *,
        channel: str = DEFAULT_CHANNEL,
        reconnect_delay: float = 1.0,
    ) -> None:
        if reconnect_delay <= 0:
            raise ValueError("reconnect_delay must be positive")
        self._url = redis_url
        self.view = view
        self.channel = channel
        self._reconnect_delay = float(reconnect_delay)
        self.received = 0
        self.applied = 0
        self.errors = 0
        self._subscribed = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def subscribed(self) -> bool:
        return self._subscribed.is_set()

    def wait_subscribed(self, timeout: float | None = None) -> bool:
        """Block until the subscription is live (True) or `timeout` passes (False)."""
        return self._subscribed.wait(timeout)

    def handle(self, data: Any) -> int:
        """Apply one pub/sub message body; returns how many entries were accepted."""
        self.received += 1
        if isinstance(data, (bytes, bytearray)):
            if len(data) > _MAX_MESSAGE:
                log.warning("revocation push message ignored: too large")
                return 0
            data = bytes(data).decode("utf-8", "replace")
        try:
            entry = json.loads(data)
        except (TypeError, ValueError):
            log.warning("revocation push message ignored: not JSON")
            return 0
        entries = entry if isinstance(entry, list) else [entry]
        accepted = self.view.apply(entries)
        self.applied += accepted
        return accepted

    async def run(self) -> None:
        """Subscribe and apply until cancelled; reconnects after any failure."""
        import redis.asyncio as aioredis

        while True:
            # A subscriber waits for messages indefinitely: no read timeout (redis-py 8 made
            # it 5 s by default, which cuts an idle subscription); TCP keepalive still
            # notices a dead peer.
            client = aioredis.from_url(self._url, socket_timeout=None, socket_keepalive=True)
            pubsub = client.pubsub()
            try:
                await pubsub.subscribe(self.channel)
                self._subscribed.set()
                async for message in pubsub.listen():
                    if message.get("type") == "message":
                        self.handle(message.get("data"))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.errors += 1
                log.warning("revocation push: %s; reconnecting", type(exc).__name__)
            finally:
                self._subscribed.clear()
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
                with contextlib.suppress(Exception):
                    await client.aclose()
            await asyncio.sleep(self._reconnect_delay)

    # ----------------------------------------------------------------- thread mode

    def start(self) -> None:
        """Run `run()` in a daemon thread with its own event loop."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._thread = threading.Thread(
            target=self._thread_main, name="did-auth-revocation-push", daemon=True
        )
        self._thread.start()

    def _thread_main(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            self._task = loop.create_task(self.run())
            with contextlib.suppress(asyncio.CancelledError):
                loop.run_until_complete(self._task)
        finally:
            loop.close()
            self._loop = None

    def stop(self, timeout: float | None = 5.0) -> None:
        loop, task, thread = self._loop, self._task, self._thread
        if loop is not None and task is not None:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(task.cancel)
        self._thread = None
        if thread is not None:
            thread.join(timeout)
