"""Login sessions and opaque refresh tokens (stored hashed, rotated on every use).

RFC 6819 §5.2.2.3 / OAuth 2.0 Security BCP §4.14: refresh tokens rotate; presenting a
rotated-out token is treated as theft and revokes the whole session family, except an exact
retry of the immediately previous token within a short grace period.

A refresh token is `rt_` + base64url(sid (32 bytes) || secret (32 bytes)). Only SHA-256 of the
whole token is stored. The sid inside lets one atomic compare-and-set on one key (the session
record) decide a rotation, which also keeps Redis Cluster happy (one hash slot).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, field, fields, replace
from typing import Any, Protocol

import orjson
from did_auth_verifier.jose import JoseError, b64url_decode, b64url_encode

from did_auth.core.clock import Clock
from did_auth.core.errors import InvalidGrant, TemporarilyUnavailable
from did_auth.core.ports import store_keys
from did_auth.core.ports.store import Store
from did_auth.core.tokens.issue import Grant

__all__ = ["Session", "SessionRevoker", "SessionStore", "session_grant", "session_key"]

_PREFIX = "rt_"
_HISTORY = 16  # rotated-out hashes remembered for reuse detection
_REVOKE_ATTEMPTS = 50


def session_key(sid: str) -> str:
    return store_keys.session(sid)


def session_grant(session: Session, scopes: tuple[str, ...] | None = None) -> Grant:
    """The grant a session keeps (every field of `Grant`; a session is created from one),
    for new access tokens of the session; `scopes` narrows them (a refresh)."""
    kept = {f.name: getattr(session, f.name) for f in fields(Grant)}
    if scopes is not None:
        kept["scopes"] = scopes
    return Grant(**kept)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class Session:
    sid: str
    sub: str
    client_id: str
    audience: str
    scopes: tuple[str, ...]
    auth_time: int
    amr: tuple[str, ...]
    created_at: float
    expires_at: float  # absolute session lifetime
    jkt: str | None = None
    refresh_hash: str = ""
    refresh_expires_at: float = 0.0
    rotated_at: float = 0.0
    previous: tuple[str, ...] = field(default_factory=tuple)
    grace_hash: str = ""  # the token rotated out last, accepted again until grace_until
    grace_until: float = 0.0
    revoked: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    userinfo: bool = False  # an OpenID Connect login (`Grant.userinfo`)

    def to_bytes(self) -> bytes:
        # The instance dict holds only JSON-able values (tuples become arrays); cheaper than
        # dataclasses.asdict's deep copy on the login path.
        return orjson.dumps(self.__dict__)

    @classmethod
    def from_bytes(cls, raw: bytes) -> Session:
        d = orjson.loads(raw)
        d["scopes"] = tuple(d["scopes"])
        d["amr"] = tuple(d["amr"])
        d["previous"] = tuple(d["previous"])
        return cls(**d)


class SessionRevoker(Protocol):
    """What revokes sessions: `did_auth.core.flows.revocations.RevocationBook`, which marks the
    session revoked (`SessionStore.revoke_live`) and announces its sid on the feed."""

    async def revoke_sid(self, sid: str, *, reason: str) -> bool: ...


def _new_refresh(sid: str) -> str:
    body = bytes.fromhex(sid[2:]) + secrets.token_bytes(32)
    return _PREFIX + b64url_encode(body)


def sid_of_refresh(token: str) -> str | None:
    if not token.startswith(_PREFIX) or len(token) != len(_PREFIX) + 86:
        return None
    try:
        body = b64url_decode(token[len(_PREFIX) :])
    except JoseError:
        return None
    if len(body) != 64:
        return None
    return "0x" + body[:32].hex()


@dataclass(eq=False)
class SessionStore:
    """Login sessions and their rotating refresh tokens (`grace`: seconds a rotated-out
    refresh token still answers with the same successor, for a client's retry)."""

    store: Store
    clock: Clock
    refresh_ttl: int = field(kw_only=True)
    max_lifetime: int = field(kw_only=True)
    grace: int = field(default=10, kw_only=True)

    def _ttl(self, s: Session) -> float:
        return max(1.0, s.expires_at - self.clock.now())

    async def create(self, session: Session) -> tuple[Session, str]:
        """Persist a new session; returns it with its first refresh token."""
        now = self.clock.now()
        token = _new_refresh(session.sid)
        session = replace(
            session,
            created_at=now,
            expires_at=now + self.max_lifetime,
            refresh_hash=_hash(token),
            refresh_expires_at=now + self.refresh_ttl,
            rotated_at=now,
        )
        if not await self.store.put(
            session_key(session.sid), session.to_bytes(), self._ttl(session), nx=True
        ):
            raise InvalidGrant("session id collision", reason="sid_collision")
        return session, token

    async def get(self, sid: str) -> Session | None:
        raw = await self.store.get(session_key(sid))
        return None if raw is None else Session.from_bytes(raw)

    async def current(self, token: str) -> Session | None:
        """The live session whose *current* refresh token this is, else None."""
        sid = sid_of_refresh(token)
        if sid is None:
            return None
        s = await self.get(sid)
        now = self.clock.now()
        if (
            s is None
            or s.revoked
            or not hmac.compare_digest(s.refresh_hash, _hash(token))
            or now >= s.refresh_expires_at
            or now >= s.expires_at
        ):
            return None
        return s

    async def bind_key(self, sid: str, jkt: str) -> Session:
        """Bind a live session (its refresh-token family) to a DPoP key, once.

        RFC 9449 §5: "the refresh token MUST be bound to the respective public key" when
        it is issued with a valid DPoP proof; a session already bound to another key is
        never re-bound (compare-and-set, so a concurrent writer cannot be overwritten)."""
        for _ in range(5):
            raw = await self.store.get(session_key(sid))
            if raw is None:
                raise InvalidGrant("the session of this code has been revoked")
            s = Session.from_bytes(raw)
            if s.revoked or self.clock.now() >= s.expires_at:
                raise InvalidGrant("the session of this code has been revoked")
            if s.jkt == jkt:
                return s
            if s.jkt is not None:
                raise InvalidGrant("the session is bound to another DPoP key", reason="dpop_rebind")
            bound = replace(s, jkt=jkt)
            if await self.store.swap(session_key(sid), raw, bound.to_bytes(), self._ttl(s)):
                return bound
        raise InvalidGrant(  # pragma: no cover - five lost races on one session record
            "the session is being changed concurrently", reason="session_race"
        )

    async def revoke_live(self, sid: str) -> bool | None:
        """Mark a live session (its whole refresh-token family) revoked: True when this call
        revoked it, False when it was revoked already or is past its lifetime, None when the
        store does not know it.

        Called by `RevocationBook.revoke_sid` only, which announces the sid on the
        revocation feed unless this returns False: a session revoked here alone would still
        be accepted by every verifier following the feed. There is no other way to revoke a
        session (tests/security/test_session_revocations_reach_the_feed.py)."""
        # A revocation must win against concurrent rotations: retry the compare-and-set
        # (each lost race means another writer changed the record), and fail closed rather
        # than report a session revoked that is still live.
        for _ in range(_REVOKE_ATTEMPTS):
            raw = await self.store.get(session_key(sid))
            if raw is None:
                return None
            s = Session.from_bytes(raw)
            if s.revoked or self.clock.now() >= s.expires_at:
                return False
            done = replace(s, revoked=True)
            if await self.store.swap(session_key(sid), raw, done.to_bytes(), self._ttl(s)):
                return True
        raise TemporarilyUnavailable(  # pragma: no cover - needs 50 lost races in a row
            "the session could not be revoked under contention; retry", reason="revoke_contention"
        )

    async def rotate(self, token: str, *, revocations: SessionRevoker) -> tuple[Session, str]:
        """Exchange a refresh token for the next one (atomic compare-and-set).

        A rotated-out token presented again is theft: the session is revoked through
        `revocations` (the `RevocationBook`), which also announces it on the feed."""
        sid = sid_of_refresh(token)
        if sid is None:
            raise InvalidGrant("malformed refresh token", reason="refresh_malformed")
        h = _hash(token)
        for _ in range(5):
            raw = await self.store.get(session_key(sid))
            if raw is None:
                raise InvalidGrant("refresh token unknown or expired", reason="refresh_unknown")
            s = Session.from_bytes(raw)
            now = self.clock.now()
            if s.revoked:
                raise InvalidGrant("the session was revoked", reason="session_revoked")
            retry = h == s.grace_hash and h != s.refresh_hash and now < s.grace_until
            if h != s.refresh_hash and not retry:
                if h in s.previous:
                    # RFC 6819 §5.2.2.3: the server revokes the refresh token family (the
                    # session); the feed entry ends the session's access tokens too.
                    await revocations.revoke_sid(sid, reason="refresh_reuse")
                    raise InvalidGrant(
                        "refresh token reuse detected; the session was revoked",
                        reason="refresh_reuse",
                    )
                raise InvalidGrant("refresh token unknown or expired", reason="refresh_unknown")
            if now >= s.refresh_expires_at or now >= s.expires_at:
                raise InvalidGrant("refresh token expired", reason="refresh_expired")
            new_token = _new_refresh(sid)
            # The superseded token joins the history: presenting it later is reuse.
            history = (*s.previous, s.refresh_hash)
            nxt = replace(
                s,
                refresh_hash=_hash(new_token),
                refresh_expires_at=min(now + self.refresh_ttl, s.expires_at),
                rotated_at=now,
                previous=tuple(history[-_HISTORY:]),
                # An exact retry (lost response) is honoured within the grace window of the
                # original rotation only; it never extends that window.
                grace_hash=s.grace_hash if retry else s.refresh_hash,
                grace_until=s.grace_until if retry else now + self.grace,
            )
            if await self.store.swap(session_key(sid), raw, nxt.to_bytes(), self._ttl(s)):
                return nxt, new_token
        raise InvalidGrant("refresh token is being used concurrently", reason="refresh_race")
