"""One revocation watcher task per configured chain with a registry (started by Services)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field

from did_auth.adapters.chain.client import ChainRegistry
from did_auth.adapters.chain.heads import subscribe_new_heads
from did_auth.adapters.chain.registry_reader import dedicated_client, registry_addresses
from did_auth.adapters.chain.watcher import Watcher
from did_auth.adapters.monitoring.audit import AuditLog
from did_auth.core.flows.revocations import RevocationBook
from did_auth.core.ports.store import Store
from did_auth.core.tokens.sessions import SessionStore

__all__ = ["WatcherPool"]

log = logging.getLogger("did_auth.adapters.chain.watcher")


@dataclass(eq=False)
class WatcherPool:
    """One watcher task per configured chain with a registry (started by Services)."""

    chains: ChainRegistry
    store: Store
    sessions: SessionStore
    revocations: RevocationBook
    audit: AuditLog | None = None
    watchers: list[Watcher] = field(default_factory=list, init=False)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list, init=False)
    _unhooks: list[Callable[[], None]] = field(default_factory=list, init=False)

    def start(self) -> None:
        """Create the watchers and their tasks (call from a running event loop, after
        the chain registry started). Idempotent."""
        if self._tasks:
            return
        # A pool dropped without stop() (its Services never closed) ends its tasks at the
        # next poll instead of polling forever: the tasks hold it only weakly.
        pool = weakref.ref(self)

        def alive() -> bool:
            return pool() is not None

        for config in self.chains.settings.chains:
            try:
                revocation, did = registry_addresses(self.chains, config)
                if revocation is None and did is None:
                    continue
                client = dedicated_client(self.chains, config)
            except Exception as exc:  # never stop the server from starting
                log.warning(
                    "chain %s: no revocation watcher (%s)", config.chain_id, type(exc).__name__
                )
                continue
            watcher = Watcher(
                chain_id=config.chain_id,
                client=client,
                revocation_registry=revocation,
                did_registry=did,
                store=self.store,
                sessions=self.sessions,
                revocations=self.revocations,
                audit=self.audit,
                interval=config.watch_interval,
                confirmations=config.confirmations,
                governs=config.revocation_registry_for if revocation is not None else (),
            )
            self.watchers.append(watcher)
            self._tasks.append(
                asyncio.create_task(
                    watcher.run(alive),
                    name=f"did-auth-watcher-{config.chain_id}",
                )
            )
            # New blocks wake the watcher at once: the node's newHeads subscription, or the
            # embedded EVM's callback on every block it mines.
            if config.ws_url:
                self._tasks.append(
                    asyncio.create_task(
                        subscribe_new_heads(
                            config.ws_url, watcher.heads, timeout=config.rpc_timeout
                        ),
                        name=f"did-auth-new-heads-{config.chain_id}",
                    )
                )
            base = self.chains.clients.get(config.chain_id)
            if base is not None and base.embedded is not None:
                base.embedded.on_block.append(watcher.heads.notify)
                self._unhooks.append(
                    functools.partial(base.embedded.on_block.remove, watcher.heads.notify)
                )

    async def stop(self) -> None:
        unhooks, self._unhooks = self._unhooks, []
        for unhook in unhooks:
            with contextlib.suppress(ValueError):
                unhook()
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        watchers, self.watchers = self.watchers, []
        for watcher in watchers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(watcher.release(), timeout=2.0)
            with contextlib.suppress(Exception):
                await watcher.client.close()
