"""Revocations in the store and the feed trading APIs follow.

Every revocation ends the affected login sessions (their refresh-token families) and
appends one feed entry per session (`{"sid", "exp"}`) or token (`{"jti", "exp"}`); `exp` is
the time after which no token it covers can still be valid, so verifiers may forget it then.
`did-auth sessions revoke-all` adds `{"all": true, "before": T}` (`revoke_all`; see
`flows/revoke_all.py`).
The feed is a Redis stream read with `GET /revocations?since=CURSOR&limit=N`; each entry is
also published on a pub/sub channel for verifiers that want a push.

On-chain revocations (the chain watcher decodes each event into one call of the book; effects
on sessions of the watched chain's subjects only):

* `Revoked(account, id)`, `id` a session id: that session, if its subject's account is
  `account`. A stranger's `revoke` of someone else's sid changes nothing (audited, denied).
* `Revoked(account, id)`, `id` a key id (an address left-padded to 32 bytes): `account`'s
  sessions authenticated with that key (`auth_key`).
* `RevokedAll(account, before)`: `account`'s sessions authenticated at or before `before`
  (`revoked_before_covers`, the rule the login and refresh checks apply too).
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

A feed that a verifier can trust must not be outrun:

* a `since` cursor beyond the feed's head (the feed started over: an in-memory store
  restarted, a Redis stream lost) is answered with a page from the start carrying
  `"reset": true`; the follower takes its cursor and re-reads (entries are idempotent).
  Stream ids are time-based (`<ms>-<seq>`, the memory store's too), so a restarted server
  writes above the cursors it handed out before;
* a page answers `{"revoked": [...], "cursor": C, "more": bool}`; entries whose `exp` has
  passed are left out but never shorten the page: it holds `limit` live entries, or it ends
  at the end of the feed (`more: false`), or (a bound on the work of one request) the
  server stopped scanning expired entries and says `more: true`. A follower is current only
  after a page with `more: false`;
* the stream is trimmed by age, never by count: an entry stays at least `feed_retention`
  seconds, longer than any token it covers can live, so no flood of revocations can push
  out the entry of a token that is still valid.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from did_auth.config.settings import MAX_ACCESS_TOKEN_TTL
from did_auth.core.clock import Clock
from did_auth.core.did.accounts import account_key, account_of, subject_account
from did_auth.core.errors import InvalidRequest
from did_auth.core.ports import store_keys
from did_auth.core.ports.store import Store
from did_auth.core.tokens.cutoff import (
    revoked_before_covers,  # the one rule, shared with revoke-all
)
from did_auth.core.tokens.local_check import deny_jti
from did_auth.core.tokens.sessions import Session, SessionStore

__all__ = [
    "FEED_CHANNEL",
    "FEED_STREAM",
    "FeedPage",
    "Governed",
    "RevocationBook",
    "SessionRevocation",
    "account_key",
    "account_of",
    "key_address",
    "revoked_before_covers",
]

FEED_STREAM = store_keys.FEED_STREAM
FEED_CHANNEL = store_keys.FEED_CHANNEL
# How long a feed entry is kept: an entry matters until its `exp`, at most one access-token
# lifetime (+60 s for sid entries) after it is written. The ceiling MAX_ACCESS_TOKEN_TTL
# rather than the configured TTL, so that lowering `access_token_ttl` across a restart cannot
# trim the entries of tokens issued before; the margin covers clock skew between replicas and
# Redis and the verifiers' grace period.
_SID_EXP_MARGIN = 60
_FEED_TRIM_MARGIN = 600
# One feed request reads at most this many stream entries (expired ones included).
_FEED_SCAN_MAX = 10_000
_FEED_BATCH_MIN = 100
_FEED_BATCH_MAX = 1_000
FEED_LIMIT_MAX = 1_000
_U64_MAX = 2**64 - 1
_INDEX_CAP = 1_000_000
_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
_CAIP10 = re.compile(r"^eip155:\d{1,20}:(0x[0-9a-fA-F]{40})$")
# A stream id as Redis writes it: two unsigned 64-bit decimals, no sign, no leading zeros.
_CURSOR = re.compile(r"(0|[1-9][0-9]{0,19})-(0|[1-9][0-9]{0,19})")
_LIMIT = re.compile(r"[1-9][0-9]{0,3}")


def parse_feed_query(since: str | None, limit: str | int | None) -> tuple[str | None, int]:
    """Validate `GET /revocations` parameters before the store is touched.

    `since`: a cursor this endpoint returned (`<ms>-<seq>`, each an unsigned 64-bit decimal);
    `limit`: an integer in [1, FEED_LIMIT_MAX] (default 500). Anything else is 400
    `invalid_request`, never a store error: an id Redis cannot parse would otherwise come
    back as a Redis error (503 and an alert for what is only a bad request).
    """
    if since is not None:
        m = _CURSOR.fullmatch(since)
        if m is None:
            raise InvalidRequest("since must be a cursor returned by this endpoint")
        ms, seq = int(m.group(1)), int(m.group(2))
        if ms > _U64_MAX or seq > _U64_MAX or (ms == _U64_MAX and seq == _U64_MAX):
            raise InvalidRequest("since must be a cursor returned by this endpoint")
    if limit is None:
        n = 500
    elif isinstance(limit, str):
        if _LIMIT.fullmatch(limit) is None:
            raise InvalidRequest(f"limit must be an integer from 1 to {FEED_LIMIT_MAX}")
        n = int(limit)
    elif isinstance(limit, int) and not isinstance(limit, bool):
        n = limit
    else:
        raise InvalidRequest(f"limit must be an integer from 1 to {FEED_LIMIT_MAX}")
    if not 1 <= n <= FEED_LIMIT_MAX:
        raise InvalidRequest(f"limit must be an integer from 1 to {FEED_LIMIT_MAX}")
    return since, n


def _stream_id(cursor: str) -> tuple[int, int]:
    ms, _, seq = cursor.partition("-")
    return int(ms), int(seq or 0)


def key_address(auth_key: object) -> str | None:
    """The lower-case address of a session's `auth_key` (a bare 0x address or a CAIP-10
    `eip155:<chainId>:<address>` account, as the DID login stores it), else None."""
    if not isinstance(auth_key, str):
        return None
    if _ADDRESS.match(auth_key):
        return auth_key.lower()
    m = _CAIP10.match(auth_key.lower())
    return m.group(1) if m else None


def _auth_key(session: Session) -> str | None:
    return key_address(session.extra.get("auth_key")) if session.extra else None


@dataclass(frozen=True, slots=True)
class Governed:
    """Whose sessions one registry's events may end: subjects whose account lives on one of
    `chains` (a RevocationRegistry governs its own chain and its `revocation_registry_for`
    chains; an ERC-1056 registry only the did:ethr identities of its own chain). An account
    on a chain no registry governs is never touched: the same address there can be another
    owner's contract wallet. `None` chains: any subject of the account (an operator's
    revocation)."""

    chains: frozenset[int] | None = None
    ethr_only: bool = False

    @classmethod
    def of(cls, chains: Iterable[int], *, ethr_only: bool = False) -> Governed:
        return cls(frozenset(chains), ethr_only)

    def owns(self, session: Session, account: str) -> bool:
        """Whether `session` is a session of `account` that this scope governs."""
        subject = subject_account(session.sub)
        if subject is None:
            return self.chains is None and account_of(session.sub) == account.lower()
        return (
            subject.account == account.lower()
            and (self.chains is None or subject.chain_id in self.chains)
            and (subject.ethr or not self.ethr_only)
        )

    def key_forms(self, address: str) -> list[str]:
        """The `auth_key` spellings of one key address: bare, and CAIP-10 per chain."""
        chains: Collection[int] = sorted(self.chains) if self.chains is not None else ()
        return [address.lower(), *(f"eip155:{c}:{address.lower()}" for c in chains)]


ANY_SUBJECT = Governed()


@dataclass(frozen=True, slots=True)
class SessionRevocation:
    """What `revoke_session` did: the sessions it ended, or the session it refused to end
    because the caller does not own it (a stranger's on-chain `revoke` of someone's sid)."""

    revoked: list[Session]
    refused: Session | None = None


@dataclass(frozen=True, slots=True)
class FeedPage:
    """One page of the feed: its live entries with their own cursors (oldest first), the
    page's cursor (past any expired entries skipped), whether more follows, and whether
    `since` was beyond the head (the page is then from the start)."""

    rows: list[tuple[str, dict[str, Any]]]
    cursor: str
    more: bool
    reset: bool = False

    def document(self) -> dict[str, Any]:
        """The `GET /revocations` answer."""
        out: dict[str, Any] = {
            "revoked": [entry for _, entry in self.rows], "cursor": self.cursor,
            "more": self.more,
        }
        if self.reset:
            out["reset"] = True
        return out


@dataclass
class RevocationBook:
    store: Store
    sessions: SessionStore
    clock: Clock
    access_ttl: int
    session_lifetime: int
    #: Called after every feed entry this process writes (the revocation stream's wakeup).
    on_append: list[Callable[[], None]] = field(default_factory=list)

    async def index(self, session: Session) -> None:
        """Remember which sessions belong to an account (and to a delegate key)."""
        account = account_of(session.sub)
        if account is not None:
            await self.store.cap_add(
                store_keys.account_sessions(account), session.sid, _INDEX_CAP,
                self.session_lifetime,
            )
        key_id = session.extra.get("auth_key") if session.extra else None
        if isinstance(key_id, str) and key_id:
            await self.store.cap_add(
                store_keys.auth_key_sessions(key_id), session.sid, _INDEX_CAP,
                self.session_lifetime,
            )

    @property
    def feed_retention(self) -> float:
        """Seconds a feed entry is kept: longer than any token it can cover stays valid."""
        return float(max(MAX_ACCESS_TOKEN_TTL, self.access_ttl) + _SID_EXP_MARGIN
                     + _FEED_TRIM_MARGIN)

    async def _emit(self, entry: dict[str, Any]) -> str:
        raw = orjson.dumps(entry)
        # Trim by age, not by count: a flood of revocations must never push out the entry of
        # a token that is still valid (an entry outlives its own `exp` by the margin).
        keep_for = self.feed_retention
        exp = entry.get("exp")
        if isinstance(exp, int | float):
            keep_for = max(keep_for, exp - self.clock.now() + _FEED_TRIM_MARGIN)
        cursor = await self.store.feed_append(FEED_STREAM, raw, keep_for=keep_for)
        for listener in self.on_append:
            listener()
        await self.store.publish(FEED_CHANNEL, raw)
        return cursor

    async def revoke_sid(self, sid: str, *, reason: str) -> bool:
        """End one session and announce its sid; True when announced. A session revoked
        already (or past its lifetime) adds nothing to the feed; a sid the store does not
        know (e.g. revoked on chain) is announced.

        The one way to revoke a session (refresh-token rotation takes the book for reuse
        detection; the session store's marking is called from here only): the mark and the
        feed entry go together, so a verifier following the feed never keeps accepting the
        access tokens of a session the server revoked, and each sid is announced once."""
        if await self.sessions.revoke_live(sid) is False:
            return False
        await self._emit(
            {"sid": sid, "exp": int(self.clock.now()) + self.access_ttl + 60, "reason": reason}
        )
        return True

    async def _sessions_in(self, index: str) -> list[Session]:
        out = []
        for sid in await self.store.members(index):
            session = await self.sessions.get(sid)
            if session is not None and not session.revoked:
                out.append(session)
        return out

    async def _end(self, sessions: Iterable[Session], reason: str) -> list[Session]:
        """Revoke each session once; the sessions this call ended."""
        ended = []
        for session in sessions:
            if await self.revoke_sid(session.sid, reason=reason):
                ended.append(session)
        return ended

    async def revoke_account(
        self,
        account: str,
        *,
        before: int | None,
        reason: str,
        within: Governed = ANY_SUBJECT,
        keep_key: str | None = None,
    ) -> list[Session]:
        """End `account`'s sessions that `within` governs and that were authenticated at
        or before `before` (`revoked_before_covers`; all when None), except those
        authenticated with `keep_key`. Returns the sessions ended."""
        keep = keep_key.lower() if keep_key is not None else None
        return await self._end(
            (
                session
                for session in await self._sessions_in(store_keys.account_sessions(account))
                if within.owns(session, account)
                and (before is None or revoked_before_covers(before, session.auth_time))
                and (keep is None or _auth_key(session) != keep)
            ),
            reason,
        )

    async def suspend(self, account: str, *, reason: str, within: Governed) -> list[Session]:
        """A suspended account loses every session (suspension is never undone here)."""
        return await self.revoke_account(account, before=None, reason=reason, within=within)

    async def revoke_auth_key(
        self, key: str, *, account: str, reason: str, within: Governed
    ) -> list[Session]:
        """End `account`'s sessions authenticated with the key at address `key`."""
        seen: dict[str, Session] = {}
        for form in within.key_forms(key):
            for session in await self._sessions_in(store_keys.auth_key_sessions(form)):
                if within.owns(session, account):
                    seen.setdefault(session.sid, session)
        return await self._end(seen.values(), reason)

    async def revoke_session(
        self, sid: str, *, account: str, reason: str, within: Governed
    ) -> SessionRevocation:
        """End one session if it is `account`'s; refuse (and report) anybody else's."""
        session = await self.sessions.get(sid)
        if session is None or session.revoked:
            return SessionRevocation([])  # not a session of ours (or long gone)
        if not within.owns(session, account):
            return SessionRevocation([], refused=session)
        return SessionRevocation(await self._end([session], reason))

    async def replace_owner(
        self, identity: str, *, previous: str | None, owner: str, within: Governed
    ) -> list[Session]:
        """ERC-1056 `DIDOwnerChanged`: the sessions authenticated with the previous owner
        key die; when the previous owner is unknown, every session not authenticated with
        the new owner. An owner of `0x0` deactivates the DID: every session dies."""
        if int(owner, 16) == 0:
            return await self.revoke_account(
                identity, before=None, reason="did_deactivated", within=within
            )
        if previous is not None:
            if previous.lower() == owner.lower():
                return []
            return await self.revoke_auth_key(
                previous, account=identity, reason="did_owner_changed", within=within
            )
        return await self.revoke_account(
            identity, before=None, reason="did_owner_changed", within=within, keep_key=owner
        )

    async def revoke_all(self, before: int, *, reason: str) -> str:
        """Announce the global cut-off (`did-auth sessions revoke-all`, the cut-off already
        in the store): every token whose `auth_time` (else `iat`) is at or before `before`
        is revoked. `exp` covers the longest access token any configuration can issue.
        Verifiers older than this entry kind ignore it: `flows/revoke_all.py` also
        announces each session by sid."""
        exp = before + max(MAX_ACCESS_TOKEN_TTL, self.access_ttl) + _SID_EXP_MARGIN
        return await self._emit({"all": True, "before": before, "exp": exp, "reason": reason})

    async def revoke_jti(self, jti: str, exp: float, *, reason: str) -> bool:
        """Deny one access token and announce it; True when it was not denied yet (a token
        denied already adds nothing to the feed)."""
        if not await deny_jti(self.store, jti, exp, self.clock.now()):
            return False
        await self._emit({"jti": jti, "exp": int(exp), "reason": reason})
        return True

    async def feed(self, since: str | None, limit: str | int | None = None) -> dict[str, Any]:
        """One page of the feed after cursor `since` (from the start when None), as
        `GET /revocations` answers it (see `page`)."""
        return (await self.page(since, limit)).document()

    async def page(self, since: str | None, limit: str | int | None = None) -> FeedPage:
        """One page of the feed after cursor `since` (from the start when None).

        Expired entries are skipped without shortening the page: reading goes on until
        `limit` live entries are collected, the end of the stream is reached (`more: false`),
        or `_FEED_SCAN_MAX` entries were scanned (`more: true`; the cursor then moves past
        the expired entries, so the next request continues behind them).
        """
        since, limit = parse_feed_query(since, limit)
        now = self.clock.now()
        revoked: list[tuple[str, dict[str, Any]]] = []
        cursor = since
        scanned = 0
        more = True
        while more and len(revoked) < limit and scanned < _FEED_SCAN_MAX:
            want = limit - len(revoked)
            batch = min(_FEED_BATCH_MAX, max(want, _FEED_BATCH_MIN), _FEED_SCAN_MAX - scanned)
            rows = await self.store.feed_read(FEED_STREAM, cursor, batch)
            scanned += len(rows)
            if len(rows) < batch:
                more = False  # the stream ends inside this batch
            for index, (row_cursor, raw) in enumerate(rows):
                cursor = row_cursor
                try:
                    entry = orjson.loads(raw)
                except orjson.JSONDecodeError:
                    continue
                exp = entry.get("exp") if isinstance(entry, dict) else None
                if isinstance(exp, int | float) and exp > now:
                    revoked.append((row_cursor, entry))
                    if len(revoked) == limit:
                        if index < len(rows) - 1:
                            more = True  # rows after this one are still unread
                        break
        if since is not None and cursor == since and await self._beyond_head(since):
            # A cursor this feed never handed out, ahead of everything written: the feed
            # started over (an in-memory store restarted, a Redis stream lost) or the
            # follower read another feed. Answering "nothing new" would leave the follower
            # behind every later entry for good; it re-reads from the start instead
            # (entries are idempotent) and takes the new cursor.
            page = await self.page(None, limit)
            return FeedPage(page.rows, page.cursor, page.more, reset=True)
        return FeedPage(revoked, cursor if cursor is not None else "0-0", more)

    async def _beyond_head(self, since: str) -> bool:
        head = await self.store.feed_head(FEED_STREAM)
        return _stream_id(since) > (_stream_id(head) if head is not None else (0, 0))
