"""One `revokedBefore` rule (RevocationRegistry.revokeAll) for the login check, the refresh /
introspection check and the chain watcher's RevocationBook: everything authenticated at or
before the boundary, within the boundary block's second included, is dead.

Before the rule was shared it was written three times: the watcher ended sessions with
`auth_time <= before`, the refresh check with `revoked_before >= auth_time`, and
`RevocationBook.revoke_account` ended only sessions authenticated strictly before the
boundary, so a session authenticated in the revokeAll block's second survived it.
"""

from __future__ import annotations

import os

import pytest

from did_auth.adapters.store.memory import MemoryStore
from did_auth.core.clock import FixedClock
from did_auth.core.errors import AccessDenied
from did_auth.core.flows.registry_checks import RegistryState, check_login, check_session
from did_auth.core.flows.revocations import Governed, RevocationBook, revoked_before_covers
from did_auth.core.tokens.sessions import Session, SessionStore

T = 1_800_000_000
ACCOUNT = "0x" + "ab" * 20


def _state(revoked_before: int) -> RegistryState:
    return RegistryState(1, ACCOUNT, suspended=False, revoked_before=revoked_before)


@pytest.mark.parametrize(
    ("at", "dead"),
    [(T - 100, True), (T, True), (T + 0.5, True), (T + 0.999, True), (T + 1, False)],
)
def test_one_boundary_for_logins_and_sessions(at: float, dead: bool) -> None:
    assert revoked_before_covers(T, at) is dead
    assert revoked_before_covers(0, at) is False  # 0: revokeAll never called
    for check in (
        lambda: check_login(_state(T), at),
        lambda: check_session(_state(T), at, "0x" + "11" * 32),
    ):
        if dead:
            with pytest.raises(AccessDenied) as e:
                check()
            assert e.value.reason == "revoked"
        else:
            check()


async def test_the_book_applies_the_same_boundary() -> None:
    clock = FixedClock(T + 10)
    store = MemoryStore()
    sessions = SessionStore(store, clock, refresh_ttl=3600, max_lifetime=86400)
    book = RevocationBook(store, sessions, clock, access_ttl=300, session_lifetime=86400)
    sids = {}
    for label, auth_time in (("before", T - 1), ("at", T), ("after", T + 1)):
        s, _ = await sessions.create(
            Session(
                sid="0x" + os.urandom(32).hex(),
                sub=f"did:pkh:eip155:1:{ACCOUNT}",
                client_id="dapp",
                audience="trading-api",
                scopes=("account:read",),
                auth_time=auth_time,
                amr=("siwe",),
                created_at=0.0,
                expires_at=0.0,
            )
        )
        await book.index(s)
        sids[label] = s.sid
    ended = await book.revoke_account(
        ACCOUNT, before=T, reason="chain_revoke_all", within=Governed.of([1])
    )
    assert {s.sid for s in ended} == {sids["before"], sids["at"]}
    after = await sessions.get(sids["after"])
    assert after is not None and not after.revoked
    # A registry of another chain does not govern these subjects: nothing more dies.
    assert await book.revoke_account(ACCOUNT, before=None, reason="x", within=Governed.of([5])) == []
