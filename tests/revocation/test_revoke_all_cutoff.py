"""The global revocation cut-off (`did-auth sessions revoke-all`) with an injected clock.

One boundary rule, the one of `revokedBefore` (`revoked_before_covers`): everything
authenticated at or before the cut-off T is dead, including the rest of T's whole second;
a token is judged by its `auth_time` (else `iat`), so a refresh of an old session cannot
yield a token that survives. The verifier applies the same rule to the feed's
`{"all": true, "before": T, "exp": E}` entry.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from did_auth_verifier.revocations import RevocationSet

from did_auth.adapters.store.memory import MemoryStore
from did_auth.config.settings import MAX_ACCESS_TOKEN_TTL
from did_auth.core.clock import FixedClock
from did_auth.core.flows.revocations import FEED_STREAM, RevocationBook, revoked_before_covers
from did_auth.core.flows.revoke_all import revoke_all_sessions
from did_auth.core.tokens.cutoff import claims_covered, read_cutoff
from did_auth.core.tokens.sessions import Session, SessionStore

T0 = 1_800_000_000.6  # the command runs 0.6 s into a second


def _book(clock: FixedClock) -> RevocationBook:
    store = MemoryStore(wall=clock.now)
    sessions = SessionStore(store, clock, refresh_ttl=86_400, max_lifetime=30 * 86_400)
    return RevocationBook(store, sessions, clock, access_ttl=300, session_lifetime=30 * 86_400)


async def _session(book: RevocationBook, auth_time: int, sid: str) -> Session:
    s = Session(sid=sid, sub="did:pkh:eip155:1:0x" + "11" * 20, client_id="dapp",
                scopes=("account:read",), audience="trading-api", auth_time=auth_time,
                amr=("siwe",), created_at=0.0, expires_at=0.0)
    created, _ = await book.sessions.create(s)
    return created


def _sid(n: int) -> str:
    return "0x" + f"{n:064x}"


async def _entries(book: RevocationBook) -> list[dict[str, Any]]:
    return [orjson.loads(raw) for _, raw in await book.store.feed_read(FEED_STREAM, None, 100)]


async def test_boundary_is_the_revoked_before_rule() -> None:
    clock = FixedClock(T0)
    book = _book(clock)
    assert await read_cutoff(book.store) is None
    assert not claims_covered(None, {"iat": 1})  # no cut-off: nothing is covered
    result = await revoke_all_sessions(book)
    t = result.before
    assert t == 1_800_000_000  # whole seconds, as block times and token times are
    assert await read_cutoff(book.store) == t
    # The same <= rule as revokedBefore, applied to a token's auth_time, else iat.
    for at in (t - 100, t - 1, t, t + 0.9):
        assert revoked_before_covers(t, at)
        assert claims_covered(t, {"iat": at})
    assert not revoked_before_covers(t, t + 1)
    assert not claims_covered(t, {"iat": t + 1})
    assert not claims_covered(t, {"iat": t + 1, "auth_time": t + 1})
    # A token minted after T by a refresh of a session authenticated before T: covered.
    assert claims_covered(t, {"iat": t + 5, "auth_time": t - 10})
    # No usable time: cannot be proven newer than the cut-off.
    assert claims_covered(t, {"iat": "soon"})
    assert claims_covered(t, {})


async def test_a_later_command_never_lowers_the_cutoff_and_the_feed_says_all() -> None:
    clock = FixedClock(T0)
    book = _book(clock)
    first = await revoke_all_sessions(book)
    clock.t = T0 - 50  # another operator's machine, its clock behind
    second = await revoke_all_sessions(book)
    assert second.before == first.before == await read_cutoff(book.store)
    entries = [e for e in await _entries(book) if e.get("all") is True]
    assert entries[0] == {
        "all": True, "before": first.before,
        "exp": first.before + MAX_ACCESS_TOKEN_TTL + 60, "reason": "revoked_all",
    }


async def test_each_session_at_or_before_t_is_announced_by_sid_once() -> None:
    clock = FixedClock(T0)
    book = _book(clock)
    old = await _session(book, int(T0) - 600, _sid(1))
    same_second = await _session(book, int(T0), _sid(2))

    async def sids() -> Any:
        for sid in (old.sid, same_second.sid, _sid(3), old.sid):  # 3: unknown; 1 twice
            yield sid

    result = await revoke_all_sessions(book, sids=sids())
    assert result.announced == 2
    announced = [e["sid"] for e in await _entries(book) if "sid" in e]
    assert announced == [old.sid, same_second.sid]
    for sid in announced:
        session = await book.sessions.get(sid)
        assert session is not None and session.revoked


async def test_a_session_after_t_survives_the_sweep() -> None:
    clock = FixedClock(T0)
    book = _book(clock)
    result = await revoke_all_sessions(book)
    clock.advance(1.0)  # the next second: a new login
    fresh = await _session(book, int(clock.now()), _sid(7))

    async def sids() -> Any:
        yield fresh.sid

    again = await revoke_all_sessions(book, sids=sids())
    assert again.before == int(clock.now()) > result.before
    # Its own second is covered by the second command (T moved on); at the first T it
    # was not: a sweep only ends sessions at or before the T it wrote.
    assert again.announced == 1
    clock.advance(1.0)
    newer = await _session(book, int(clock.now()), _sid(8))

    async def late() -> Any:
        yield newer.sid

    # A sweep started at T2 that meets a session authenticated later leaves it alone.
    from did_auth.core.flows.revoke_all import announce_sessions

    assert await announce_sessions(book, again.before, late()) == 0
    session = await book.sessions.get(newer.sid)
    assert session is not None and not session.revoked


# ----------------------------------------------------------------------- the verifier


def test_verifier_honours_the_all_entry_with_the_same_rule() -> None:
    clock = FixedClock(T0)
    view = RevocationSet(clock=clock, grace=120)
    t = 1_800_000_000
    assert view.apply([{"all": True, "before": t, "exp": t + 3660}]) == 1
    assert view.is_revoked({"iat": t, "sub": "did:pkh:eip155:1:0xA", "jti": "j"})
    assert view.is_revoked({"iat": t - 30})
    assert view.is_revoked({"iat": t + 5, "auth_time": t})  # refreshed from an old login
    assert view.is_revoked({})  # no usable time: not provably newer
    assert not view.is_revoked({"iat": t + 1})
    assert not view.is_revoked({"iat": t + 1, "auth_time": t + 1})
    # A later cut-off replaces an earlier one, never the reverse.
    view.apply([{"all": True, "before": t + 10, "exp": t + 3670}])
    view.apply([{"all": True, "before": t - 10, "exp": t + 3650}])
    assert view.is_revoked({"iat": t + 10}) and not view.is_revoked({"iat": t + 11})
    # Gone once every token it covers has expired (exp + grace).
    clock.t = t + 3670 + 121
    view.purge()
    assert not view.is_revoked({"iat": t})


@pytest.mark.parametrize("entry", [
    {"all": "yes", "before": 5, "exp": 2_000_000_000},
    {"all": True, "exp": 2_000_000_000},
    {"all": True, "before": "5", "exp": 2_000_000_000},
    {"all": True, "before": 5, "sid": "0x01", "exp": 2_000_000_000},
])
def test_verifier_ignores_a_malformed_all_entry(entry: dict[str, Any]) -> None:
    view = RevocationSet(clock=FixedClock(T0))
    assert view.apply([entry]) == 0
    assert not view.is_revoked({"iat": 1})


def test_gate_feed_counts_the_all_entry_and_refuses_with_it() -> None:
    """did-auth-gate's view: the entry bumps the generation (remembered allow decisions are
    dropped) and the follower refuses tokens at or before the cut-off."""
    from did_auth_verifier.gate.decisions import FollowedFeed

    t = 1_800_000_000
    page = {"revoked": [{"all": True, "before": t, "exp": t + 3660}], "cursor": "1-0",
            "more": False}
    feed = FollowedFeed("http://127.0.0.1:9/", clock=FixedClock(T0), fetch=lambda url: page)
    assert feed.poll_once()
    assert feed.generation == 1
    assert feed.is_revoked({"iat": t, "auth_time": t})
    assert not feed.is_revoked({"iat": t + 1, "auth_time": t + 1})
