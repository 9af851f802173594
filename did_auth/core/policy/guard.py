"""The seam between proof checks and abuse protection (rate limits, source backoff).

Flows call the guard at the points where only they know what happened (which account a
proof claims, whether its signature verified); the guard's policy lives in
`did_auth.core.policy.abuse`. Tests of pure flows use `OpenGuard`. The seam lives in `policy`
(the lower layer) so that the policy implements it without importing `flows`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

__all__ = ["LoginGuard", "OpenGuard", "RequestContext"]


@dataclass(frozen=True)
class RequestContext:
    ip: str = ""
    request_id: str = ""


class LoginGuard(Protocol):
    async def before_proof(self, ctx: RequestContext, client_id: str, claimed: str) -> None:
        """May raise RateLimited while this source is backed off."""
        ...

    async def proof_failed(self, ctx: RequestContext, client_id: str, claimed: str) -> None:
        """A signature did not verify: count it against the source (IP, IP + account)."""
        ...

    async def proof_verified(self, ctx: RequestContext, client_id: str, subject: str) -> None:
        """A signature verified: charge the subject's budget (may raise RateLimited)."""
        ...


class OpenGuard:
    async def before_proof(self, ctx: RequestContext, client_id: str, claimed: str) -> None:
        return None

    async def proof_failed(self, ctx: RequestContext, client_id: str, claimed: str) -> None:
        return None

    async def proof_verified(self, ctx: RequestContext, client_id: str, subject: str) -> None:
        return None
