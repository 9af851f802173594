"""The revocation watcher: turns on-chain revocations into revoked sessions within seconds.

One `Watcher` per `[[chains]]` entry that has a RevocationRegistry or an ERC-1056 registry
(the embedded chain included), started by `Services.start()` as a background asyncio task
(`WatcherPool`) and cancelled by `Services.close()`.

Every `watch_interval` seconds it polls the chain's head and processes the blocks
`[last + 1 .. head - confirmations]` in bounded chunks (`eth_getLogs` over both registries,
at most `chunk_size` blocks per request, halved after a failed request), decodes the events
and applies them through `RevocationBook` (the session is revoked, its refresh family dies,
and a `{"sid", "exp"}` entry goes out on the feed and the pub/sub channel that trading APIs
follow). Each applied revocation writes one `revocation_applied` audit line and counts in
`didauth_revocations_applied_total{chain,kind}`; `didauth_watcher_lag_blocks{chain}` is
`head - last processed block` (the watcher's counters live in `WATCHER_REGISTRY`).
Nothing is ever un-revoked (`Unsuspended` only logs).

Effects (on sessions of *this* chain's subjects only):

* `Revoked(account, id)`, `id` a session id: that session, if its subject's account is
  `account`. A stranger's `revoke` of someone else's sid changes nothing (audited, denied).
* `Revoked(account, id)`, `id` a key id (an address left-padded to 32 bytes): `account`'s
  sessions authenticated with that key (`auth_key`).
* `RevokedAll(account, before)`: `account`'s sessions with `auth_time <= before`.
* `Suspended(account)`: all of `account`'s sessions.
* ERC-1056 `DIDDelegateChanged(identity, "sigAuth", delegate, validTo, _)` with `validTo <=`
  the block time (`revokeDelegate`, or an already expired validity): the identity's
  did:ethr sessions authenticated with `delegate`.
* ERC-1056 `DIDOwnerChanged(identity, owner, _)`: the identity's did:ethr sessions
  authenticated with the *previous* owner key (`identityOwner` read at the block before;
  when that state cannot be read, every session of the identity not authenticated with the
  new owner). To `0x0` (deactivation): all of the identity's did:ethr sessions.

"This chain's subjects": for RevocationRegistry events, a `did:pkh:eip155:<chainId>:…` or
did:ethr subject on any chain this chain's registry governs (the chain itself and its
`revocation_registry_for` chain ids: suspension and revokeAll() bind to the account, the
same address on every governed chain, as the login/refresh checks read it); for ERC-1056
events, did:ethr subjects of the watched chain only (a DID document lives on one chain).
Chains no registry governs are never touched: the same address there can be another
owner's contract wallet. Sessions are found through `RevocationBook`'s indexes (by
account address and by `auth_key`, a bare address or a CAIP-10 account).

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
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import orjson
from eth_abi.abi import encode

from did_auth.chain.client import ChainClient, ChainRegistry, RpcCall, RpcError
from did_auth.chain.registries import dedicated_client, registry_addresses
from did_auth.errors import TemporarilyUnavailable
from did_auth.flows.registry_checks import key_address, key_id_address, subject_account
from did_auth.flows.revocations import RevocationBook, _account_key, _key_key
from did_auth.monitoring.audit import AuditEvent, AuditLog, Outcome
from did_auth.monitoring.metrics import METRICS, Registry
from did_auth.signatures.eip191 import keccak256, to_checksum_address
from did_auth.store.base import Store
from did_auth.tokens.sessions import Session, SessionStore

__all__ = [
    "ChainEvent",
    "Cursor",
    "Watcher",
    "WatcherPool",
    "cursor_key",
    "decode_event",
    "lease_key",
]

log = logging.getLogger("did_auth.chain.watcher")

MAX_RECENT: Final = 128
REORG_MARGIN: Final = 128
DEFAULT_CHUNK: Final = 1000
CURSOR_TTL: Final = 400 * 86400.0

TOPIC_REVOKED: Final = keccak256(b"Revoked(address,bytes32,address)")
TOPIC_REVOKED_ALL: Final = keccak256(b"RevokedAll(address,uint256)")
TOPIC_SUSPENDED: Final = keccak256(b"Suspended(address,address)")
TOPIC_UNSUSPENDED: Final = keccak256(b"Unsuspended(address,address)")
TOPIC_OWNER: Final = keccak256(b"DIDOwnerChanged(address,address,uint256)")
TOPIC_DELEGATE: Final = keccak256(b"DIDDelegateChanged(address,bytes32,address,uint256,uint256)")
_OWNER_SELECTOR: Final = keccak256(b"identityOwner(address)")[:4]
_SIG_AUTH: Final = b"sigAuth".ljust(32, b"\x00")
_ZERO: Final = "0x" + "00" * 20


#: The watcher's own counters. Kept out of the process-wide `REGISTRY` (whose metric set is
#: pinned by tests/monitoring/test_metrics.py); `/metrics` can append
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


def cursor_key(chain_id: int) -> str:
    return f"da:{{watch:{chain_id}}}:cursor"


def lease_key(chain_id: int) -> str:
    return f"da:{{watch:{chain_id}}}:lease"


def _bytes(value: Any) -> bytes:
    if isinstance(value, str):
        return bytes.fromhex(value[2:] if value.startswith("0x") else value)
    return bytes(value)


def _hex(value: Any) -> str:
    return "0x" + _bytes(value).hex()


def _address_word(word: bytes) -> str:
    return "0x" + word[-20:].hex()


# ------------------------------------------------------------------------------- events


@dataclass(frozen=True, slots=True)
class ChainEvent:
    """One decoded registry event (addresses lower-case, ids 0x-hex)."""

    kind: str  # revoked | revoked_all | suspended | unsuspended | delegate | owner
    block: int
    log_index: int
    tx_hash: str
    account: str  # the account (RevocationRegistry) or the identity (ERC-1056)
    id: str | None = None
    before: int | None = None
    delegate: str | None = None
    sig_auth: bool = False
    valid_to: int | None = None
    owner: str | None = None


def decode_event(
    log_entry: Mapping[str, Any], *, revocation_registry: str | None, did_registry: str | None
) -> ChainEvent | None:
    """Decode one `eth_getLogs` entry of either registry; None for anything else."""
    if log_entry.get("removed"):
        return None
    address = str(log_entry.get("address", "")).lower()
    try:
        topics = [_bytes(t) for t in log_entry.get("topics") or []]
        data = _bytes(log_entry.get("data") or b"")
        block = int(log_entry["blockNumber"])
        index = int(log_entry.get("logIndex") or 0)
        tx = _hex(log_entry.get("transactionHash") or b"")
    except (KeyError, ValueError, TypeError):
        log.warning("undecodable registry log")
        return None
    if not topics:
        return None
    t0, n = topics[0], len(topics)
    if revocation_registry is not None and address == revocation_registry.lower():
        if t0 == TOPIC_REVOKED and n >= 3:
            return ChainEvent(
                "revoked", block, index, tx, _address_word(topics[1]), id=_hex(topics[2])
            )
        if t0 == TOPIC_REVOKED_ALL and n >= 2 and len(data) >= 32:
            before = int.from_bytes(data[:32], "big")
            return ChainEvent(
                "revoked_all", block, index, tx, _address_word(topics[1]), before=before
            )
        if t0 == TOPIC_SUSPENDED and n >= 2:
            return ChainEvent("suspended", block, index, tx, _address_word(topics[1]))
        if t0 == TOPIC_UNSUSPENDED and n >= 2:
            return ChainEvent("unsuspended", block, index, tx, _address_word(topics[1]))
    if did_registry is not None and address == did_registry.lower():
        if t0 == TOPIC_DELEGATE and n >= 2 and len(data) >= 128:
            return ChainEvent(
                "delegate",
                block,
                index,
                tx,
                _address_word(topics[1]),
                sig_auth=data[:32] == _SIG_AUTH,
                delegate=_address_word(data[32:64]),
                valid_to=int.from_bytes(data[64:96], "big"),
            )
        if t0 == TOPIC_OWNER and n >= 2 and len(data) >= 64:
            return ChainEvent(
                "owner", block, index, tx, _address_word(topics[1]), owner=_address_word(data[:32])
            )
    return None


# ------------------------------------------------------------------------------- cursor


@dataclass
class Cursor:
    """The last processed block, recent processed blocks' hashes, and the cursor's scope."""

    number: int
    hash: str
    scope: str
    recent: list[tuple[int, str]] = field(default_factory=list)

    def to_bytes(self) -> bytes:
        return orjson.dumps(
            {
                "number": self.number,
                "hash": self.hash,
                "scope": self.scope,
                "recent": [[n, h] for n, h in self.recent],
            }
        )

    @classmethod
    def from_bytes(cls, raw: bytes) -> Cursor | None:
        try:
            d = orjson.loads(raw)
            return cls(
                number=int(d["number"]),
                hash=str(d["hash"]),
                scope=str(d["scope"]),
                recent=[(int(n), str(h)) for n, h in d.get("recent", [])],
            )
        except (ValueError, KeyError, TypeError):
            return None

    def advanced(self, number: int, block_hash: str) -> Cursor:
        recent = [*(e for e in self.recent if e[0] < number), (number, block_hash)]
        return Cursor(number, block_hash, self.scope, recent[-MAX_RECENT:])


@dataclass(frozen=True, slots=True)
class _Block:
    number: int
    hash: str
    timestamp: int


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
    ) -> None:
        if revocation_registry is None and did_registry is None:
            raise ValueError("a watcher needs at least one registry")
        self.chain_id = chain_id
        #: Chain ids whose subjects this chain's RevocationRegistry governs (itself included).
        self.governs = frozenset((chain_id, *governs))
        self.client = client
        self.revocation_registry = revocation_registry.lower() if revocation_registry else None
        self.did_registry = did_registry.lower() if did_registry else None
        self.store = store
        self.sessions = sessions
        self.revocations = revocations
        self.audit = audit
        self.interval = float(interval)
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

    async def _block(self, number: int) -> _Block | None:
        from web3.exceptions import BlockNotFound

        try:
            b = await self.client.w3.eth.get_block(number)
        except BlockNotFound:
            return None
        if b is None or b.get("hash") is None:
            return None
        return _Block(int(b["number"]), _hex(b["hash"]), int(b["timestamp"]))

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
        return _address_word(_bytes(result))

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
        """Poll every `interval` seconds until cancelled (or until `alive()` turns False);
        errors are logged and counted."""
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
            await asyncio.sleep(self.interval)
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
            if event is None:
                continue
            if event.kind == "revoked":
                applied += await self._on_revoked(event)
            elif event.kind == "revoked_all":
                applied += await self._revoke_all_of(
                    event, "chain_revoke_all", before=event.before or 0
                )
            elif event.kind == "suspended":
                applied += await self._revoke_all_of(event, "chain_suspended", before=None)
            elif event.kind == "unsuspended":
                log.info(
                    "chain %s: %s unsuspended (block %s); revoked sessions stay revoked",
                    self.chain_id,
                    event.account,
                    event.block,
                )
            elif event.kind == "delegate":
                if event.sig_auth and event.valid_to is not None and event.valid_to <= block_time:
                    assert event.delegate is not None
                    applied += await self._revoke_key_of_identity(
                        event, event.delegate, "did_delegate_revoked"
                    )
            elif event.kind == "owner":
                applied += await self._on_owner_changed(event, owners)
        return applied

    async def _sessions_in(self, index: str) -> list[Session]:
        out = []
        for sid in await self.store.members(index):
            session = await self.sessions.get(sid)
            if session is not None:
                out.append(session)
        return out

    async def _key_sessions(self, address: str) -> list[Session]:
        seen: dict[str, Session] = {}
        for key in (address, *(f"eip155:{c}:{address}" for c in sorted(self.governs))):
            for session in await self._sessions_in(_key_key(key)):
                seen.setdefault(session.sid, session)
        return list(seen.values())

    def _owned_by(self, session: Session, account: str, *, ethr_only: bool = False) -> bool:
        subject = subject_account(session.sub)
        return (
            subject is not None
            # ERC-1056 events: the watched chain's DIDs; registry events: governed chains.
            and subject.chain_id in ((self.chain_id,) if ethr_only else self.governs)
            and subject.account == account
            and (subject.ethr or not ethr_only)
        )

    async def _revoke(self, session: Session, kind: str, event: ChainEvent) -> int:
        if session.revoked:
            return 0
        await self.revocations.revoke_sid(session.sid, reason=kind)
        REVOCATIONS_APPLIED.labels(chain=self._label, kind=kind).inc()
        if self.audit is not None:
            self.audit.emit(
                AuditEvent.REVOCATION_APPLIED,
                Outcome.SUCCESS,
                reason=kind,
                client_id=session.client_id,
                subject=session.sub,
                sid=session.sid,
                chain_id=self.chain_id,
                block=event.block,
                tx_hash=event.tx_hash,
                log_index=event.log_index,
            )
        log.info(
            "chain %s: session %s… revoked (%s, block %s)",
            self.chain_id,
            session.sid[:10],
            kind,
            event.block,
        )
        return 1

    async def _on_revoked(self, event: ChainEvent) -> int:
        assert event.id is not None
        address = key_id_address(event.id)
        if address is not None:
            n = 0
            for session in await self._key_sessions(address):
                if self._owned_by(session, event.account):
                    n += await self._revoke(session, "chain_key_revoked", event)
            return n
        target = await self.sessions.get(event.id)
        if target is None:
            return 0  # not a session of ours (or long gone)
        if not self._owned_by(target, event.account):
            log.warning(
                "chain %s: %s revoked a session id it does not own (block %s); ignored",
                self.chain_id,
                event.account,
                event.block,
            )
            if self.audit is not None:
                self.audit.emit(
                    AuditEvent.REVOCATION_APPLIED,
                    Outcome.DENIED,
                    reason="not_owner",
                    subject=target.sub,
                    sid=target.sid,
                    chain_id=self.chain_id,
                    block=event.block,
                    tx_hash=event.tx_hash,
                    by=event.account,
                )
            return 0
        return await self._revoke(target, "chain_revoked", event)

    async def _revoke_all_of(self, event: ChainEvent, kind: str, *, before: int | None) -> int:
        """`event.account`'s sessions authenticated at or before `before` (all: None)."""
        n = 0
        for session in await self._sessions_in(_account_key(event.account)):
            if not self._owned_by(session, event.account):
                continue
            if before is None or session.auth_time <= before:
                n += await self._revoke(session, kind, event)
        return n

    async def _revoke_key_of_identity(self, event: ChainEvent, key: str, kind: str) -> int:
        n = 0
        for session in await self._key_sessions(key):
            if self._owned_by(session, event.account, ethr_only=True):
                n += await self._revoke(session, kind, event)
        return n

    async def _on_owner_changed(self, event: ChainEvent, owners: dict[str, str]) -> int:
        identity, new_owner = event.account, event.owner or _ZERO
        previous = owners.get(identity)
        if previous is None:
            previous = await self._owner_before(identity, event.block)
        owners[identity] = new_owner
        if new_owner == _ZERO:  # deactivated for good: every session of the DID dies
            n = 0
            for session in await self._sessions_in(_account_key(identity)):
                if self._owned_by(session, identity, ethr_only=True):
                    n += await self._revoke(session, "did_deactivated", event)
            return n
        if previous is not None:
            if previous == new_owner:
                return 0
            return await self._revoke_key_of_identity(event, previous, "did_owner_changed")
        # The previous owner is unknown (state not served): keep only the new owner's.
        n = 0
        for session in await self._sessions_in(_account_key(identity)):
            auth = key_address(session.extra.get("auth_key")) if session.extra else None
            if self._owned_by(session, identity, ethr_only=True) and auth != new_owner:
                n += await self._revoke(session, "did_owner_changed", event)
        return n


# ------------------------------------------------------------------------------- pool


class WatcherPool:
    """One watcher task per configured chain with a registry (started by Services)."""

    def __init__(
        self,
        chains: ChainRegistry,
        store: Store,
        sessions: SessionStore,
        revocations: RevocationBook,
        audit: AuditLog | None = None,
    ) -> None:
        self.chains = chains
        self.store = store
        self.sessions = sessions
        self.revocations = revocations
        self.audit = audit
        self.watchers: list[Watcher] = []
        self._tasks: list[asyncio.Task[None]] = []

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

    async def stop(self) -> None:
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
