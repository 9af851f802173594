"""The global revocation cut-off (`did-auth sessions revoke-all`), and the one
`revokedBefore` boundary rule it shares with the RevocationRegistry checks.

The cut-off is one number in the store (`REVOKED_ALL_BEFORE`, Unix seconds): every session
authenticated at or before it is dead. The refresh grant refuses such a session
(invalid_grant, as a revoked one) and `LocalTokenCheck` (/userinfo, /introspect, /otp/*,
/transactions/*) refuses an access token whose `auth_time` (else `iat`) is at or before it;
verifiers learn it from the feed entry `{"all": true, "before", "exp"}`
(`RevocationBook.revoke_all`) and apply the same rule. A login after the cut-off's second
is not affected.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from did_auth.core.errors import TemporarilyUnavailable
from did_auth.core.ports import store_keys
from did_auth.core.ports.store import Store

__all__ = ["claims_covered", "read_cutoff", "revoked_before_covers", "token_time", "write_cutoff"]


def revoked_before_covers(revoked_before: int | None, at: float) -> bool:
    """The one `revokedBefore` rule (RevocationRegistry.revokeAll), for logins (the message's
    issue time) and sessions (their `auth_time`) alike: everything authenticated at or before
    the boundary is dead; 0 or None means never. Block timestamps have whole seconds, so a
    time within the second of the revokeAll block cannot be proven later than it and is
    covered too. The global cut-off of `did-auth sessions revoke-all` uses it as well."""
    return bool(revoked_before) and math.floor(at) <= int(revoked_before or 0)


def token_time(claims: Mapping[str, Any]) -> float | None:
    """When the login behind an access token happened: `auth_time`, else `iat` (a token
    refreshed from an old login carries the old `auth_time`), else None."""
    for name in ("auth_time", "iat"):
        value = claims.get(name)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    return None


def claims_covered(before: int | None, claims: Mapping[str, Any]) -> bool:
    """Whether the cut-off `before` kills the token with these claims (a token with no
    usable time cannot be proven newer, so it is covered)."""
    if not before:
        return False
    when = token_time(claims)
    return when is None or revoked_before_covers(before, when)


async def read_cutoff(store: Store) -> int | None:
    """The global cut-off, or None when `revoke-all` never ran (or its sessions are gone).
    An unreadable value fails closed (503), never open."""
    raw = await store.get(store_keys.REVOKED_ALL_BEFORE)
    if raw is None:
        return None
    try:
        return int(raw.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        raise TemporarilyUnavailable(
            "the global revocation cut-off in the store is unreadable", reason="cutoff_corrupt"
        ) from None


async def write_cutoff(store: Store, now: float, *, keep_for: float) -> int:
    """Set the cut-off to `now` (whole seconds, floor) and return it; a cut-off already
    later (another operator's run, a clock behind) is kept: the cut-off never moves back.
    `keep_for`: seconds to keep it, longer than any session or token it covers lives."""
    before = math.floor(now)
    current = await read_cutoff(store)
    if current is not None and current > before:
        before = current
    await store.put(store_keys.REVOKED_ALL_BEFORE, str(before).encode("ascii"), keep_for)
    return before
