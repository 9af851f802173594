"""`did_auth_verifier.withdrawals.WithdrawalCheck` on its own: exact match, then single use,
in memory and in a real Redis shared by several "replicas" (checks), racing threads."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from did_auth_verifier.redis_replay import RedisReplayCache
from did_auth_verifier.withdrawals import Withdrawal, WithdrawalCheck

from did_auth.core.clock import FixedClock
from did_auth.verifier import InsufficientScope, InvalidToken, TemporarilyUnavailable
from tests.fixtures.redis_server import RedisServer, free_port

from .conftest import AUDIENCE, FakeIssuer

DETAIL = {
    "type": "withdrawal",
    "audience": AUDIENCE,
    "asset": "ETH",
    "amount": "0.5",
    "destination": "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
    "network": "ethereum",
}
REQUEST = Withdrawal(asset="ETH", amount="0.5", destination=DETAIL["destination"],
                     network="ethereum")


def verified(issuer: FakeIssuer, verifier: Any, **claims: Any) -> Any:
    claims.setdefault("scope", "wallet:withdraw")
    claims.setdefault("authorization_details", [DETAIL])
    return verifier.verify(issuer.mint(**claims))


def test_exact_match_then_once_in_memory(
    issuer: FakeIssuer, verifier: Any, clock: FixedClock
) -> None:
    check = WithdrawalCheck(audience=AUDIENCE, clock=clock)
    token = verified(issuer, verifier)
    for wrong in (
        Withdrawal("ETH", "0.50", REQUEST.destination, "ethereum"),
        Withdrawal("eth", "0.5", REQUEST.destination, "ethereum"),
        Withdrawal("ETH", "0.5", REQUEST.destination.lower(), "ethereum"),
        Withdrawal("ETH", "0.5", REQUEST.destination, "mainnet"),
    ):
        with pytest.raises(InsufficientScope):
            check.check(token, wrong)
    assert check.check(token, REQUEST)["amount"] == "0.5"
    with pytest.raises(InvalidToken):
        check.check(token, REQUEST)


def test_without_the_scope_or_the_details(
    issuer: FakeIssuer, verifier: Any, clock: FixedClock
) -> None:
    check = WithdrawalCheck(audience=AUDIENCE, clock=clock)
    with pytest.raises(InsufficientScope):
        check.check(verified(issuer, verifier, scope="account:read"), REQUEST)
    with pytest.raises(InsufficientScope):
        check.check(verified(issuer, verifier, authorization_details=None), REQUEST)


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    return redis_server.url


def test_one_use_across_replicas_sharing_redis(
    issuer: FakeIssuer, verifier: Any, clock: FixedClock, redis_url: str
) -> None:
    token = verified(issuer, verifier)
    replicas = [
        WithdrawalCheck(audience=AUDIENCE, clock=clock, replay=RedisReplayCache(redis_url))
        for _ in range(8)
    ]
    assert all(r.blocking for r in replicas)
    accepted: list[int] = []
    refused: list[int] = []
    start = threading.Barrier(len(replicas))

    def use(i: int) -> None:
        start.wait()
        try:
            replicas[i].check(token, REQUEST)
            accepted.append(i)
        except InvalidToken:
            refused.append(i)

    threads = [threading.Thread(target=use, args=(i,)) for i in range(len(replicas))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(accepted) == 1 and len(refused) == len(replicas) - 1


def test_redis_down_fails_closed(issuer: FakeIssuer, verifier: Any, clock: FixedClock) -> None:
    down = RedisReplayCache(f"redis://127.0.0.1:{free_port()}/0", timeout=0.5)
    check = WithdrawalCheck(audience=AUDIENCE, clock=clock, replay=down)
    with pytest.raises(TemporarilyUnavailable):
        check.check(verified(issuer, verifier), REQUEST)
