"""Revoke every session at once (`did-auth sessions revoke-all`, an incident command).

In this order, each step safe to repeat (a second run only moves the cut-off later):

1. the global cut-off T = now (whole seconds) goes to the store (`tokens/cutoff.py`): from
   then on every replica refuses the refresh of a session authenticated at or before T and,
   at its own resources, every access token whose `auth_time` (else `iat`) is at or before
   T — the one `revokedBefore` rule (`revoked_before_covers`), so the rest of T's second is
   covered too and a login succeeds again from the next second;
2. one feed entry `{"all": true, "before": T, "exp": T + the longest access-token lifetime
   + 60}`: a verifier of this release (and did-auth-gate) refuses those tokens as soon as
   the entry reaches it (pushed, well under a second);
3. every session still live and authenticated at or before T is ended and announced by
   `sid` (`RevocationBook.revoke_sid`), the entry kind every verifier knows: a verifier
   older than the `all` entry ignores it (it logs "revocation entry ignored: needs exactly
   one of jti/sid/sub" and stays current), so without this step it would keep accepting
   the tokens until they expire. The sessions come from the caller (the store's adapter
   scans them); this step takes longer than the first two with many sessions.
"""

from __future__ import annotations

from collections.abc import AsyncIterable
from dataclasses import dataclass

from did_auth.config.settings import MAX_ACCESS_TOKEN_TTL
from did_auth.core.flows.revocations import RevocationBook
from did_auth.core.tokens.cutoff import revoked_before_covers, write_cutoff

__all__ = ["RevokeAllResult", "announce_sessions", "revoke_all_sessions"]

# The cut-off is kept longer than any session or access token it covers can live.
_KEEP_MARGIN = 3_600
REASON = "revoked_all"


@dataclass(frozen=True, slots=True)
class RevokeAllResult:
    before: int  # the cut-off T (Unix seconds)
    cursor: str  # the feed cursor of the `all` entry
    announced: int  # sessions ended and announced by sid


async def revoke_all_sessions(
    book: RevocationBook, *, sids: AsyncIterable[str] | None = None
) -> RevokeAllResult:
    """Steps 1-3 above (step 3 when `sids`, the store's session ids, are given). The feed
    is public: its entries say `reason: "revoked_all"`, never the operator's words (those
    go to the audit log)."""
    keep_for = max(book.session_lifetime, book.access_ttl, MAX_ACCESS_TOKEN_TTL) + _KEEP_MARGIN
    before = await write_cutoff(book.store, book.clock.now(), keep_for=keep_for)
    cursor = await book.revoke_all(before, reason=REASON)
    announced = await announce_sessions(book, before, sids) if sids is not None else 0
    return RevokeAllResult(before, cursor, announced)


async def announce_sessions(
    book: RevocationBook, before: int, sids: AsyncIterable[str]
) -> int:
    """End and announce by sid each live session authenticated at or before `before`
    (a login after the cut-off is left alone); how many this call ended."""
    ended = 0
    async for sid in sids:
        session = await book.sessions.get(sid)
        if session is None or session.revoked:
            continue
        if not revoked_before_covers(before, session.auth_time):
            continue
        if await book.revoke_sid(sid, reason=REASON):
            ended += 1
    return ended
