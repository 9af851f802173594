"""New-block notifications for the revocation watcher, so it reads a block as soon as it is
mined instead of at its next poll.

* A chain with a `ws_url`: `eth_subscribe("newHeads")` over a WebSocket JSON-RPC connection
  (the Ethereum JSON-RPC pub/sub API geth introduced and Hardhat, Anvil, Erigon, Nethermind
  and Besu serve): the node pushes an `eth_subscription` notification per new head. The
  subscription reconnects after any failure (with a back-off); a missed notification costs
  at most one `watch_interval`, since the watcher keeps polling on its timer too.
* The embedded chain: the in-process EVM calls back on every block it mines
  (`EmbeddedChain.on_block`).

Either way the watcher only learns "there may be a new block" (`NewHeads.wait`): what the
block holds is read through the same pinned `eth_getLogs` path as a poll, so a forged or
re-ordered notification can wake the watcher early but never make it apply anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any, Final

__all__ = ["NewHeads", "subscribe_new_heads"]

log = logging.getLogger("did_auth.adapters.chain.watcher")

_RECONNECT_MIN: Final = 0.5
_RECONNECT_MAX: Final = 30.0
_MAX_MESSAGE: Final = 1 << 20


class NewHeads:
    """A wakeup the watcher waits on between polls; `notify()` may be called from any
    thread (the embedded EVM mines on a worker thread)."""

    def __init__(self) -> None:
        self._event = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.notifications = 0

    def bind(self) -> None:
        """Remember the running loop (call from it) for notifications from other threads."""
        self._loop = asyncio.get_running_loop()

    def notify(self) -> None:
        self.notifications += 1
        loop = self._loop
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if loop is None or running is loop:
            self._event.set()
        elif not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._event.set)

    async def wait(self, timeout: float) -> bool:
        """Until a notification (True) or `timeout` seconds (False); clears it."""
        # asyncio.timeout, not wait_for: on Python 3.11, wait_for drops a cancellation that
        # arrives as the event is set, and a cancelled watcher would then poll forever.
        try:
            async with asyncio.timeout(timeout):
                await self._event.wait()
        except TimeoutError:
            return False
        finally:
            self._event.clear()
        return True


async def subscribe_new_heads(ws_url: str, heads: NewHeads, *, timeout: float = 10.0) -> None:
    """Follow `newHeads` at `ws_url` and notify `heads` of each; runs until cancelled."""
    from websockets.asyncio.client import connect  # web3's WebSocket dependency

    delay = _RECONNECT_MIN
    while True:
        try:
            async with connect(
                ws_url, open_timeout=timeout, max_size=_MAX_MESSAGE, ping_interval=20
            ) as ws:
                await ws.send(json.dumps(
                    {"jsonrpc": "2.0", "id": 1, "method": "eth_subscribe", "params": ["newHeads"]}
                ))
                subscription: Any = None
                async for raw in ws:
                    message = json.loads(raw)
                    if not isinstance(message, dict):
                        continue
                    if message.get("id") == 1:
                        if "error" in message or not isinstance(message.get("result"), str):
                            raise RuntimeError(f"eth_subscribe refused: {message.get('error')}")
                        subscription = message["result"]
                        delay = _RECONNECT_MIN
                        log.info("new-heads subscription at %s", ws_url.split("?")[0])
                        heads.notify()  # a block may have come while we were not listening
                        continue
                    params = message.get("params")
                    if (
                        message.get("method") == "eth_subscription"
                        and isinstance(params, dict)
                        and params.get("subscription") == subscription
                    ):
                        heads.notify()
            raise ConnectionError("the node closed the subscription")
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning(
                "new-heads subscription failed (%s); the watcher polls meanwhile; retrying "
                "in %.1f s", type(exc).__name__, delay,
            )
        await asyncio.sleep(delay)
        delay = min(_RECONNECT_MAX, delay * 2)
