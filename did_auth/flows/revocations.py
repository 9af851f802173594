"""Revocations in the store and the feed trading APIs follow.

Every revocation ends the affected login sessions (their refresh-token families) and
appends one feed entry per session (`{"sid", "exp"}`) or token (`{"jti", "exp"}`); `exp` is
the time after which no token it covers can still be valid, so verifiers may forget it then.
The feed is a Redis stream read with `GET /revocations?since=CURSOR&limit=N`; each entry is
also published on a pub/sub channel for verifiers that want a push.

A feed that a verifier can trust must not be outrun:

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
from dataclasses import dataclass
from typing import Any

import orjson

from did_auth.clock import Clock
from did_auth.errors import DidAuthError, InvalidRequest
from did_auth.settings import MAX_ACCESS_TOKEN_TTL
from did_auth.store.base import Store
from did_auth.tokens.local_check import deny_jti
from did_auth.tokens.sessions import Session, SessionStore

__all__ = ["FEED_CHANNEL", "FEED_STREAM", "RevocationBook", "account_key", "account_of"]

FEED_STREAM = "da:{feed}:revocations"
FEED_CHANNEL = "da:revocations"
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
_ETHR = re.compile(r"^did:ethr:(?:[A-Za-z0-9]+:)?(0x[0-9a-fA-F]{40})$")
_PKH = re.compile(r"^did:pkh:eip155:\d+:(0x[0-9a-fA-F]{40})$")
_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
# A stream id as Redis writes it: two unsigned 64-bit decimals, no sign, no leading zeros.
_CURSOR = re.compile(r"(0|[1-9][0-9]{0,19})-(0|[1-9][0-9]{0,19})")
_LIMIT = re.compile(r"[1-9][0-9]{0,3}")


def account_of(sub: str) -> str | None:
    """The Ethereum account behind a subject (did:pkh eip155, did:ethr), lower case."""
    m = _PKH.match(sub) or _ETHR.match(sub)
    if m:
        return m.group(1).lower()
    if sub.startswith("did:ethr:"):
        # The other did:ethr forms (a public key, a network name with a colon): the
        # identity address the method derives from the identifier.
        from did_auth.did.ethr import parse_did_ethr  # no web3: coincurve + stdlib

        try:
            return parse_did_ethr(sub).address.lower()
        except DidAuthError:
            return None
    return None


def account_key(subject: str) -> str:
    """One key per wallet for second factors, rate limits and backoff: an EOA is the same
    account on every EVM chain, so `did:pkh:eip155:<any chain>:<addr>`, `did:ethr:[<net>:]<addr>`
    and a bare `0x` address (any letter case) all map to `eip155:<lower-case address>`.
    Any other subject (did:key) is its own key."""
    if _ADDRESS.match(subject):
        return f"eip155:{subject.lower()}"
    account = account_of(subject)
    return f"eip155:{account}" if account is not None else subject


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


def _account_key(account: str) -> str:
    return f"da:{{acct:{account.lower()}}}:sids"


def _key_key(key_id: str) -> str:
    return f"da:{{authkey:{key_id.lower()}}}:sids"


@dataclass
class RevocationBook:
    store: Store
    sessions: SessionStore
    clock: Clock
    access_ttl: int
    session_lifetime: int

    async def index(self, session: Session) -> None:
        """Remember which sessions belong to an account (and to a delegate key)."""
        account = account_of(session.sub)
        if account is not None:
            await self.store.cap_add(
                _account_key(account), session.sid, _INDEX_CAP, self.session_lifetime
            )
        key_id = session.extra.get("auth_key") if session.extra else None
        if isinstance(key_id, str) and key_id:
            await self.store.cap_add(
                _key_key(key_id), session.sid, _INDEX_CAP, self.session_lifetime
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
        await self.store.publish(FEED_CHANNEL, raw)
        return cursor

    async def revoke_sid(self, sid: str, *, reason: str) -> bool:
        """End one session and announce its sid; True when announced. A session revoked
        already (or past its lifetime) adds nothing to the feed; a sid the store does not
        know (e.g. revoked on chain) is announced."""
        if await self.sessions.revoke_live(sid) is False:
            return False
        await self._emit(
            {"sid": sid, "exp": int(self.clock.now()) + self.access_ttl + 60, "reason": reason}
        )
        return True

    async def revoke_account(self, account: str, *, before: float | None, reason: str) -> list[str]:
        """End every session of `account` authenticated before `before` (all when None)."""
        revoked = []
        for sid in await self.store.members(_account_key(account)):
            session = await self.sessions.get(sid)
            if session is None or session.revoked:
                continue
            if before is not None and session.auth_time >= before:
                continue
            await self.revoke_sid(sid, reason=reason)
            revoked.append(sid)
        return revoked

    async def revoke_auth_key(self, key_id: str, *, reason: str) -> list[str]:
        """End every session that was authenticated with one (delegate) key."""
        revoked = []
        for sid in await self.store.members(_key_key(key_id)):
            session = await self.sessions.get(sid)
            if session is not None and not session.revoked:
                await self.revoke_sid(sid, reason=reason)
                revoked.append(sid)
        return revoked

    async def revoke_jti(self, jti: str, exp: float, *, reason: str) -> bool:
        """Deny one access token and announce it; True when it was not denied yet (a token
        denied already adds nothing to the feed)."""
        if not await deny_jti(self.store, jti, exp, self.clock.now()):
            return False
        await self._emit({"jti": jti, "exp": int(exp), "reason": reason})
        return True

    async def feed(self, since: str | None, limit: str | int | None = None) -> dict[str, Any]:
        """One page of the feed after cursor `since` (from the start when None).

        Expired entries are skipped without shortening the page: reading goes on until
        `limit` live entries are collected, the end of the stream is reached (`more: false`),
        or `_FEED_SCAN_MAX` entries were scanned (`more: true`; the cursor then moves past
        the expired entries, so the next request continues behind them).
        """
        since, limit = parse_feed_query(since, limit)
        now = self.clock.now()
        revoked: list[dict[str, Any]] = []
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
                    revoked.append(entry)
                    if len(revoked) == limit:
                        if index < len(rows) - 1:
                            more = True  # rows after this one are still unread
                        break
        return {"revoked": revoked, "cursor": cursor if cursor is not None else "0-0",
                "more": more}
