"""Revocations in the store and the feed trading APIs follow.

Every revocation ends the affected login sessions (their refresh-token families) and
appends one feed entry per session (`{"sid", "exp"}`) or token (`{"jti", "exp"}`); `exp` is
the time after which no token it covers can still be valid, so verifiers may forget it then.
The feed is a Redis stream read with `GET /revocations?since=CURSOR`; each entry is also
published on a pub/sub channel for verifiers that want a push.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import orjson

from did_auth.clock import Clock
from did_auth.errors import InvalidRequest
from did_auth.store.base import Store
from did_auth.tokens.local_check import deny_jti
from did_auth.tokens.sessions import Session, SessionStore

__all__ = ["FEED_CHANNEL", "FEED_STREAM", "RevocationBook", "account_of"]

FEED_STREAM = "da:{feed}:revocations"
FEED_CHANNEL = "da:revocations"
_FEED_MAX = 100_000
_INDEX_CAP = 1_000_000
_ETHR = re.compile(r"^did:ethr:(?:[A-Za-z0-9]+:)?(0x[0-9a-fA-F]{40})$")
_PKH = re.compile(r"^did:pkh:eip155:\d+:(0x[0-9a-fA-F]{40})$")
_CURSOR = re.compile(r"^\d{1,20}-\d{1,20}$")


def account_of(sub: str) -> str | None:
    """The Ethereum account behind a subject (did:pkh eip155, did:ethr address form)."""
    m = _PKH.match(sub) or _ETHR.match(sub)
    return m.group(1).lower() if m else None


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

    async def _emit(self, entry: dict[str, Any]) -> str:
        raw = orjson.dumps(entry)
        cursor = await self.store.feed_append(FEED_STREAM, raw, maxlen=_FEED_MAX)
        await self.store.publish(FEED_CHANNEL, raw)
        return cursor

    async def revoke_sid(self, sid: str, *, reason: str) -> bool:
        """End one session and announce its sid; True when it existed."""
        existed = await self.sessions.revoke(sid)
        await self._emit(
            {"sid": sid, "exp": int(self.clock.now()) + self.access_ttl + 60, "reason": reason}
        )
        return existed

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

    async def revoke_jti(self, jti: str, exp: float, *, reason: str) -> None:
        await deny_jti(self.store, jti, exp, self.clock.now())
        await self._emit({"jti": jti, "exp": int(exp), "reason": reason})

    async def feed(self, since: str | None, limit: int = 500) -> dict[str, Any]:
        if since is not None and not _CURSOR.match(since):
            raise InvalidRequest("since must be a cursor returned by this endpoint")
        rows = await self.store.feed_read(FEED_STREAM, since, max(1, min(limit, 1000)))
        now = self.clock.now()
        revoked = []
        for _, raw in rows:
            entry = orjson.loads(raw)
            if entry.get("exp", 0) > now:
                revoked.append(entry)
        cursor = rows[-1][0] if rows else since
        if cursor is None:
            cursor = "0-0"
        return {"revoked": revoked, "cursor": cursor}
