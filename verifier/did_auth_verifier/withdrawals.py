"""Withdrawal tokens at the API: the request must be exactly the withdrawal the wallet
signed, and the token serves once.

did-auth issues a withdrawal token (`POST /transactions/authorize`) only for an EIP-712
signature of the account plus a second factor; its RFC 9396 `authorization_details` hold
one entry of type `withdrawal` with the signed `audience`, `asset`, `amount`,
`destination` and `network` strings. A `wallet:withdraw` scope alone (an ordinary login
with a step-up) is not enough here: without those details nothing says *which* withdrawal
the user approved.

    from did_auth_verifier.withdrawals import Withdrawal, WithdrawalCheck

    check = WithdrawalCheck(audience="trading-api")            # in-memory single use
    # or WithdrawalCheck(audience=..., replay=RedisReplayCache("redis://..."))  (replicas)
    check.check(token, Withdrawal(asset="USDC", amount="250.00",
                                  destination="0x...", network="ethereum"))

`check` compares first (a mismatch changes nothing: the right request can still use the
token), then consumes the token's `jti` (`ReplayCache.add_if_absent`, atomic; in Redis
`SET NX` with the token's remaining lifetime), so of two concurrent requests exactly one
passes. Refusals are the verifier's errors, which `did_auth_verifier.fastapi` answers with
RFC 6750 challenges:

* `insufficient_scope` (403): no withdrawal details, details for another API, or a request
  that differs in any field ("The request requires higher privileges than provided by the
  access token", RFC 6750 §3.1); the description names the field, never its value;
* `invalid_token` (401): the token was already used ("The access token provided is
  expired, revoked, malformed, or invalid for other reasons", RFC 6750 §3.1).

Values are compared as strings, byte for byte (`1.5` is not `1.50`): the API must pass the
request's own strings, not numbers it parsed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Final

from did_auth_verifier.clock import Clock, SystemClock
from did_auth_verifier.dpop import InMemoryReplayCache, ReplayCache
from did_auth_verifier.errors import InsufficientScope, InvalidToken
from did_auth_verifier.verified import VerifiedToken

__all__ = ["WITHDRAWAL_TYPE", "WITHDRAW_SCOPE", "Withdrawal", "WithdrawalCheck", "already_used"]

WITHDRAW_SCOPE: Final = "wallet:withdraw"
#: The RFC 9396 `type` of a withdrawal authorization detail.
WITHDRAWAL_TYPE: Final = "withdrawal"
_KEY_PREFIX: Final = "wd:"


@dataclass(frozen=True, slots=True)
class Withdrawal:
    """What one request asks to withdraw, as the request's strings."""

    asset: str
    amount: str
    destination: str
    network: str


class WithdrawalCheck:
    """Exact match of a request against a token's withdrawal details, then single use.

    `audience`: this API's identifier (the details' `audience` must name it, and the
    token's `aud` contain it). `replay`: where used `jti`s are remembered (in memory by
    default: one process; pass a `RedisReplayCache` when several replicas serve the API).
    `leeway`: seconds a used `jti` is remembered past the token's `exp` (the verifier's
    own exp leeway, so an expired-but-in-leeway token is still refused the second time).
    """

    def __init__(
        self,
        *,
        audience: str,
        replay: ReplayCache | None = None,
        clock: Clock | None = None,
        leeway: float = 30.0,
    ) -> None:
        self.audience = audience
        self._clock: Clock = clock if clock is not None else SystemClock()
        self.replay: ReplayCache = (
            replay if replay is not None else InMemoryReplayCache(clock=self._clock)
        )
        self._leeway = float(leeway)

    @property
    def blocking(self) -> bool:
        """Whether `check` does network I/O (run it off the event loop then)."""
        return not isinstance(self.replay, InMemoryReplayCache)

    def details(self, token: VerifiedToken) -> Mapping[str, object]:
        """The token's one withdrawal detail for this API, or InsufficientScope."""
        if WITHDRAW_SCOPE not in token.scopes:
            raise InsufficientScope(
                f"scope {WITHDRAW_SCOPE!r} required", required=(WITHDRAW_SCOPE,),
                reason="insufficient_scope",
            )
        found = token.claims.get("authorization_details")
        if (
            not isinstance(found, tuple)
            or len(found) != 1
            or not isinstance(found[0], Mapping)
            or found[0].get("type") != WITHDRAWAL_TYPE
        ):
            raise InsufficientScope(
                "the token approves no specific withdrawal: approve this withdrawal with "
                "the wallet at the issuer (POST /transactions/authorize)",
                required=(WITHDRAW_SCOPE,),
                reason="withdrawal_details_missing",
            )
        detail = found[0]
        if detail.get("audience") != self.audience or self.audience not in token.aud:
            raise InsufficientScope(
                "the token approves a withdrawal at another API",
                required=(WITHDRAW_SCOPE,),
                reason="withdrawal_audience",
            )
        return detail

    def check(self, token: VerifiedToken, request: Withdrawal) -> Mapping[str, object]:
        """Accept `request` once for `token` (already verified: signature, aud, exp, DPoP,
        revocation); returns the matched detail. Raises InsufficientScope / InvalidToken
        (and TemporarilyUnavailable when the replay store is down: fail closed)."""
        detail = self.details(token)
        for f in fields(Withdrawal):
            wanted = getattr(request, f.name)
            if not isinstance(wanted, str) or detail.get(f.name) != wanted:
                raise InsufficientScope(
                    f"the request's {f.name} is not the one the wallet approved",
                    required=(WITHDRAW_SCOPE,),
                    reason=f"withdrawal_{f.name}",
                )
        self.consume(token)
        return detail

    def replay_key(self, token: VerifiedToken) -> tuple[str, float]:
        """The single-use key of `token` and how long it must be remembered (seconds)."""
        ttl = max(1.0, token.exp + self._leeway - self._clock.now())
        return f"{_KEY_PREFIX}{token.iss}|{token.jti}", ttl

    def consume(self, token: VerifiedToken) -> None:
        """Take the token's `jti` once (atomic `add_if_absent`); InvalidToken the second time."""
        key, ttl = self.replay_key(token)
        if not self.replay.add_if_absent(key, ttl):
            raise already_used()


def already_used() -> InvalidToken:
    return InvalidToken("this withdrawal token was already used", reason="withdrawal_used")
