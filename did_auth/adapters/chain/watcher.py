"""The revocation watcher: turns on-chain revocations into revoked sessions within seconds.

One `Watcher` per `[[chains]]` entry that has a RevocationRegistry or an ERC-1056 registry
(the embedded chain included), started by `Services.start()` as a background asyncio task
(`did_auth.adapters.chain.watcher_pool.WatcherPool`) and cancelled by `Services.close()`.

Every `watch_interval` seconds (0.25 by default), and at once when told of a new block
(`eth_subscribe` newHeads on the chain's `ws_url`, or the embedded EVM's own callback; see
`did_auth.adapters.chain.heads`), it polls the chain's head and processes the blocks
`[last + 1 .. head - confirmations]` in bounded chunks (`eth_getLogs` over both registries,
at most `chunk_size` blocks per request, halved after a failed request), decodes the events
and applies them through `RevocationBook` (the session is revoked, its refresh family dies,
and a `{"sid", "exp"}` entry goes out on the feed and the pub/sub channel that trading APIs
follow). Each applied revocation writes one `revocation_applied` audit line and counts in
`didauth_revocations_applied_total{chain,kind}`; `didauth_watcher_lag_blocks{chain}` is
`head - last processed block` (the watcher's counters live in `WATCHER_REGISTRY`).
Nothing is ever un-revoked (`Unsuspended` only logs).

What each event ends is decided by `RevocationBook` (`did_auth.core.flows.revocations`, whose
docstring lists the effects); this module only decodes events (`registry_events`) and turns
each into one call of the book.

Restart: the cursor `da:{watch:<chain_id>}:cursor` (JSON: block number and hash, the hashes
of recently processed blocks, and a scope = genesis hash + registry addresses) is written
after every chunk; a restarted watcher resumes after it, so events mined while it was down
are processed. A cursor of another chain or other registries (scope mismatch), or none,
starts at the current head.

Re-orgs: each poll first compares the cursor block's hash with the chain's; on a mismatch
it steps back to the newest remembered block whose hash still matches (or, deeper than
remembered, `REORG_MARGIN` blocks before the oldest one) and re-processes from there.
Revocations are idempotent (an already revoked session is skipped) and final, so a
revocation seen on an abandoned fork stays applied; `confirmations` keeps shallow re-orgs
from ever reaching processed blocks.

One actor per chain across replicas: a lease `da:{watch:<chain_id>}:lease` taken with
`put(nx)` and a TTL of `max(2, 5 * watch_interval)` seconds, renewed with a compare-and-set
(`swap`) before every poll and chunk. A watcher that cannot renew stops acting at once and
keeps trying to take the lease; one that stops (`close`) releases it so another replica
takes over at its next poll. RPC and store errors never crash the server: they are logged,
counted (`didauth_watcher_errors_total{chain}`) and retried at the next interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Final

from eth_abi.abi import encode

from did_auth.adapters.chain.client import ChainClient, RpcCall, RpcError
from did_auth.adapters.chain.heads import NewHeads
from did_auth.adapters.chain.registry_events import (
    ChainEvent,
    address_word,
    as_bytes,
    as_hex,
    decode_event,
)
from did_auth.adapters.chain.watch_cursor import MAX_RECENT, Block, Cursor
from did_auth.adapters.monitoring.audit import AuditEvent, AuditLog, Outcome
from did_auth.adapters.monitoring.metrics import METRICS, Registry
from did_auth.core.did.ethr_did import ZERO_ADDRESS
from did_auth.core.errors import TemporarilyUnavailable
from did_auth.core.flows.registry_checks import key_id_address
from did_auth.core.flows.revocations import Governed, RevocationBook
from did_auth.core.ports import store_keys
from did_auth.core.ports.store import Store
from did_auth.core.signatures.eip191 import keccak256, to_checksum_address
from did_auth.core.tokens.sessions import Session, SessionStore

__all__ = [
    "MAX_RECENT",
    "ChainEvent",
    "Cursor",
    "Watcher",
    "cursor_key",
    "decode_event",
    "lease_key",
]

log = logging.getLogger("did_auth.adapters.chain.watcher")

REORG_MARGIN: Final = 128
DEFAULT_CHUNK: Final = 1000
CURSOR_TTL: Final = 400 * 86400.0

_OWNER_SELECTOR: Final = keccak256(b"identityOwner(address)")[:4]

#: The watcher's own counters. Kept out of the process-wide `REGISTRY` (whose metric set is
#: pinned by tests/adapters/monitoring/test_metrics.py); `/metrics` can append
#: `WATCHER_REGISTRY.expose()` to `REGISTRY.expose()` (one Prometheus text exposition).
WATCHER_REGISTRY = Registry()
REVOCATIONS_APPLIED = WATCHER_REGISTRY.counter(
    "didauth_revocations_applied_total",
    "Sessions revoked by the chain watcher, by chain id and kind of on-chain event.",
    ("chain", "kind"),
)
WATCHER_ERRORS = WATCHER_REGISTRY.counter(
    "didauth_watcher_errors_total",
    "Revocation watcher polls that failed (RPC or store errors), by chain id.",
    ("chain",),
)


cursor_key = store_keys.watch_cursor
lease_key = store_keys.watch_lease


# ------------------------------------------------------------------------------ watcher


class Watcher:
    """Follows one chain's registries; see the module docstring."""

    def __init__(
        self,
        *,
        chain_id: int,
        client: ChainClient,
        revocation_registry: str | None,
        did_registry: str | None,
        store: Store,
        sessions: SessionStore,
        revocations: RevocationBook,
        audit: AuditLog | None = None,
        interval: float = 1.0,
        confirmations: int = 0,
        chunk_size: int = DEFAULT_CHUNK,
        lease_ttl: float | None = None,
        owner: str | None = None,
        governs: Iterable[int] = (),
        heads: NewHeads | None = None,
    ) -> None:
        if revocation_registry is None and did_registry is None:
            raise ValueError("a watcher needs at least one registry")
        self.chain_id = chain_id
        #: Chain ids whose subjects this chain's RevocationRegistry governs (itself included).
        self.governs = frozenset((chain_id, *governs))
        # RevocationRegistry events reach the governed chains' subjects; ERC-1056 events
        # the did:ethr identities of this chain only (a DID document lives on one chain).
        self._registry_scope = Governed.of(self.governs)
        self._did_scope = Governed.of((chain_id,), ethr_only=True)
        self.client = client
        self.revocation_registry = revocation_registry.lower() if revocation_registry else None
        self.did_registry = did_registry.lower() if did_registry else None
        self.store = store
        self.sessions = sessions
        self.revocations = revocations
        self.audit = audit
        self.interval = float(interval)
        #: Woken on each new block (WebSocket newHeads, the embedded EVM) between polls.
        self.heads = heads if heads is not None else NewHeads()
        self.confirmations = int(confirmations)
        self.max_chunk = max(1, int(chunk_size))
        self._chunk = self.max_chunk
        self.lease_ttl = float(lease_ttl) if lease_ttl is not None else max(2.0, 5 * interval)
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(6)}"
        self._owner_bytes = self.owner.encode()
        self._scope: str | None = None
        self._label = str(chain_id)
        #: Whether this watcher holds the chain's lease (acts) right now.
        self.acting = False
        #: The last processed block, once known.
        self.processed: int | None = None
        self.applied = 0
        self.errors = 0
        self.polls = 0
        self.reorgs = 0

    # -------------------------------------------------------------------- lease

    async def hold_lease(self) -> bool:
        """Renew the lease (compare-and-set) or take it if free; False: another acts."""
        key = lease_key(self.chain_id)
        if self.acting:
            if await self.store.swap(key, self._owner_bytes, self._owner_bytes, self.lease_ttl):
                return True
            self.acting = False
            if await self.store.put(key, self._owner_bytes, self.lease_ttl, nx=True):
                # It had expired (a stalled loop) and nobody took it: ours again.
                self.acting = True
                log.debug("chain %s: revocation watcher lease re-taken", self.chain_id)
                return True
            log.warning("chain %s: revocation watcher lost its lease", self.chain_id)
            return False
        if await self.store.put(key, self._owner_bytes, self.lease_ttl, nx=True):
            self.acting = True
            log.info("chain %s: revocation watcher %s acts (lease)", self.chain_id, self.owner)
            return True
        return False

    async def release(self) -> None:
        """Give the lease up (only if it is still ours)."""
        if self.acting:
            self.acting = False
            await self.store.take(lease_key(self.chain_id), expect=self._owner_bytes)

    # -------------------------------------------------------------------- chain reads

    async def _block(self, number: int) -> Block | None:
        from web3.exceptions import BlockNotFound

        try:
            b = await self.client.w3.eth.get_block(number)
        except BlockNotFound:
            return None
        if b is None or b.get("hash") is None:
            return None
        return Block(int(b["number"]), as_hex(b["hash"]), int(b["timestamp"]))

    async def _logs(self, first: int, last: int) -> list[Mapping[str, Any]]:
        addresses = [
            to_checksum_address(a) for a in (self.revocation_registry, self.did_registry) if a
        ]
        try:
            logs = await self.client.w3.eth.get_logs(
                {"fromBlock": first, "toBlock": last, "address": addresses}  # type: ignore[typeddict-item]
            )
        except TemporarilyUnavailable:
            raise
        except Exception:
            # Providers cap getLogs ranges / result sizes: ask for less next time.
            self._chunk = max(1, self._chunk // 2)
            raise
        return sorted(
            (dict(entry) for entry in logs),
            key=lambda e: (int(e["blockNumber"]), int(e.get("logIndex") or 0)),
        )

    async def _scope_of_chain(self) -> str:
        if self._scope is None:
            genesis = await self._block(0)
            if genesis is None:
                raise TemporarilyUnavailable("no genesis block", reason="watch_genesis")
            self._scope = f"{genesis.hash}:{self.revocation_registry}:{self.did_registry}"
        return self._scope

    async def _owner_before(self, identity: str, block: int) -> str | None:
        """`identityOwner(identity)` at `block - 1` (the owner before a change), or None."""
        if self.did_registry is None or block < 1:
            return None
        call = {
            "to": self.did_registry,
            "data": "0x" + (_OWNER_SELECTOR + encode(["address"], [identity])).hex(),
        }

        def calls(_tag: str) -> Sequence[RpcCall]:
            return [("eth_call", [call, hex(block - 1)])]

        try:
            (result,) = await self.client.read(calls)
        except TemporarilyUnavailable:
            return None
        if isinstance(result, RpcError) or not isinstance(result, str) or len(result) < 66:
            return None
        return address_word(as_bytes(result))

    # -------------------------------------------------------------------- polling

    async def load_cursor(self) -> Cursor | None:
        raw = await self.store.get(cursor_key(self.chain_id))
        return Cursor.from_bytes(raw) if raw is not None else None

    async def _save(self, cursor: Cursor) -> None:
        await self.store.put(cursor_key(self.chain_id), cursor.to_bytes(), CURSOR_TTL)
        self.processed = cursor.number

    async def _find_fork(self, cursor: Cursor, target: int) -> Cursor:
        self.reorgs += 1
        for number, remembered in reversed(cursor.recent):
            if number > target + self.confirmations:
                continue
            block = await self._block(number)
            if block is not None and block.hash == remembered:
                log.warning(
                    "chain %s: re-org; re-processing after block %s", self.chain_id, number
                )
                kept = [e for e in cursor.recent if e[0] <= number]
                return Cursor(number, remembered, cursor.scope, kept)
        oldest = cursor.recent[0][0] if cursor.recent else cursor.number
        start = max(0, min(oldest, target) - REORG_MARGIN)
        block = await self._block(start)
        if block is None:
            raise TemporarilyUnavailable("block vanished during a re-org", reason="watch_reorg")
        log.warning(
            "chain %s: re-org deeper than remembered; re-processing after block %s",
            self.chain_id,
            start,
        )
        return Cursor(start, block.hash, cursor.scope, [(start, block.hash)])

    async def poll_once(self) -> int:
        """One round: lease, head, re-org check, then the new blocks. Returns how many
        sessions were revoked. Raises on RPC / store errors (`run` logs and retries)."""
        self.polls += 1
        if not await self.hold_lease():
            return 0
        head = await self.client.block_number()
        target = head - self.confirmations
        if target < 0:
            return 0
        scope = await self._scope_of_chain()
        cursor = await self.load_cursor()
        if cursor is None or cursor.scope != scope:
            block = await self._block(target)
            if block is None:
                return 0
            if cursor is not None:
                log.warning(
                    "chain %s: watcher cursor belongs to another chain or registries; "
                    "starting at block %s",
                    self.chain_id,
                    target,
                )
            await self._save(Cursor(target, block.hash, scope, [(target, block.hash)]))
            METRICS.watcher_lag.labels(chain=self._label).set(head - target)
            return 0
        current = await self._block(cursor.number)
        if current is None or current.hash != cursor.hash:
            cursor = await self._find_fork(cursor, target)
            await self._save(cursor)
        applied = 0
        while cursor.number < target:
            if not await self.hold_lease():
                break
            end = min(cursor.number + self._chunk, target)
            logs = await self._logs(cursor.number + 1, end)
            end_block = await self._block(end)
            if end_block is None:
                break  # the chain moved under us (re-org): the next poll sorts it out
            applied += await self._apply(logs, end_block.timestamp)
            cursor = cursor.advanced(end, end_block.hash)
            await self._save(cursor)
            METRICS.watcher_lag.labels(chain=self._label).set(max(0, head - end))
            self._chunk = min(self.max_chunk, self._chunk * 2)
        if cursor.number >= target:
            METRICS.watcher_lag.labels(chain=self._label).set(max(0, head - cursor.number))
        self.applied += applied
        return applied

    async def run(self, alive: Callable[[], bool] | None = None) -> None:
        """Poll every `interval` seconds, and at once on a new-block notification, until
        cancelled (or until `alive()` turns False); errors are logged and counted."""
        self.heads.bind()
        while alive is None or alive():
            try:
                await self.poll_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.errors += 1
                WATCHER_ERRORS.labels(chain=self._label).inc()
                log.warning(
                    "chain %s: revocation watcher poll failed (%s); retrying in %ss",
                    self.chain_id,
                    type(exc).__name__,
                    self.interval,
                )
            await self.heads.wait(self.interval)
        # The pool was dropped without close(): stop acting, free the connection pool.
        with contextlib.suppress(Exception):
            await self.release()
        with contextlib.suppress(Exception):
            await self.client.close()

    # -------------------------------------------------------------------- applying

    async def _apply(self, logs: Iterable[Mapping[str, Any]], block_time: int) -> int:
        applied = 0
        owners: dict[str, str] = {}  # identity -> owner after the events seen so far
        for entry in logs:
            event = decode_event(
                entry,
                revocation_registry=self.revocation_registry,
                did_registry=self.did_registry,
            )
            if event is not None:
                applied += await self._on_event(event, block_time, owners)
        return applied

    async def _on_event(self, event: ChainEvent, block_time: int, owners: dict[str, str]) -> int:
        """One decoded event as one call of the RevocationBook (which decides what dies)."""
        book, registry, did = self.revocations, self._registry_scope, self._did_scope
        if event.kind == "revoked":
            assert event.id is not None
            key = key_id_address(event.id)
            if key is not None:
                kind = "chain_key_revoked"
                ended = await book.revoke_auth_key(
                    key, account=event.account, reason=kind, within=registry
                )
            else:
                kind = "chain_revoked"
                outcome = await book.revoke_session(
                    event.id, account=event.account, reason=kind, within=registry
                )
                if outcome.refused is not None:
                    self._refused(event, outcome.refused)
                ended = outcome.revoked
        elif event.kind == "revoked_all":
            kind = "chain_revoke_all"
            ended = await book.revoke_account(
                event.account, before=event.before or 0, reason=kind, within=registry
            )
        elif event.kind == "suspended":
            kind = "chain_suspended"
            ended = await book.suspend(event.account, reason=kind, within=registry)
        elif event.kind == "delegate":
            # ERC-1056: a sigAuth delegate whose validity ended (revokeDelegate sets
            # validTo to the block time) no longer authenticates for the identity.
            if not (event.sig_auth and event.valid_to is not None and event.valid_to <= block_time):
                return 0
            assert event.delegate is not None
            kind = "did_delegate_revoked"
            ended = await book.revoke_auth_key(
                event.delegate, account=event.account, reason=kind, within=did
            )
        elif event.kind == "owner":
            identity, owner = event.account, event.owner or ZERO_ADDRESS
            previous = owners.get(identity)
            if previous is None:
                previous = await self._owner_before(identity, event.block)
            owners[identity] = owner
            if owner == ZERO_ADDRESS:  # deactivated for good: every session of the DID dies
                kind = "did_deactivated"
                ended = await book.revoke_account(identity, before=None, reason=kind, within=did)
            else:
                kind = "did_owner_changed"
                ended = await book.replace_owner(
                    identity, previous=previous, owner=owner, within=did
                )
        else:  # unsuspended: nothing is ever un-revoked
            log.info(
                "chain %s: %s %s (block %s); revoked sessions stay revoked",
                self.chain_id,
                event.account,
                event.kind,
                event.block,
            )
            return 0
        for session in ended:
            self._applied(session, kind, event)
        return len(ended)

    def _applied(self, session: Session, kind: str, event: ChainEvent) -> None:
        REVOCATIONS_APPLIED.labels(chain=self._label, kind=kind).inc()
        self._audit(Outcome.SUCCESS, kind, event, session, client_id=session.client_id,
                    log_index=event.log_index)
        log.info("chain %s: session %s… revoked (%s, block %s)", self.chain_id,
                 session.sid[:10], kind, event.block)

    def _refused(self, event: ChainEvent, target: Session) -> None:
        log.warning("chain %s: %s revoked a session id it does not own (block %s); ignored",
                    self.chain_id, event.account, event.block)
        self._audit(Outcome.DENIED, "not_owner", event, target, by=event.account)

    def _audit(
        self, outcome: Outcome, reason: str, event: ChainEvent, session: Session, **extra: Any
    ) -> None:
        """One `revocation_applied` audit line: the session and the event that named it."""
        if self.audit is not None:
            self.audit.emit(
                AuditEvent.REVOCATION_APPLIED, outcome, reason=reason, subject=session.sub,
                sid=session.sid, chain_id=self.chain_id, block=event.block,
                tx_hash=event.tx_hash, **extra,
            )
