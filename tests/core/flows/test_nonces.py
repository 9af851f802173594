"""Single-use nonces (EIP-4361 `nonce`) without HTTP: the store's expiry runs on the
injected clock, so a nonce's TTL passes in no real time."""

from __future__ import annotations

import re

import pytest

from did_auth.adapters.store.memory import MemoryStore
from did_auth.core.clock import FixedClock
from did_auth.core.errors import InvalidGrant, RateLimited
from did_auth.core.flows.nonces import NonceBook, new_nonce
from tests.core.flows.core import T0

TTL = 300


def _book() -> tuple[NonceBook, FixedClock, MemoryStore]:
    clock = FixedClock(T0)
    store = MemoryStore(monotonic=clock.now)
    return NonceBook(store, ttl=TTL), clock, store


async def _reason(book: NonceBook, nonce: str, binding: str) -> str | None:
    with pytest.raises(InvalidGrant) as err:
        await book.consume(nonce, binding)
    return err.value.reason


def test_new_nonce_is_eip4361_alphanumeric_and_long() -> None:
    # EIP-4361: nonce = 8*( ALPHA / DIGIT ); 22 base-62 characters carry > 130 bits.
    seen = {new_nonce() for _ in range(200)}
    assert len(seen) == 200
    assert all(re.fullmatch(r"[A-Za-z0-9]{22}", n) for n in seen)
    assert re.fullmatch(r"[A-Za-z0-9]{8}", new_nonce(8))
    # every character of the alphabet is reachable (uniform by rejection sampling)
    assert len(set("".join(seen))) == 62


async def test_a_nonce_is_used_once() -> None:
    book, _, _ = _book()
    nonce = await book.issue("dapp")
    await book.consume(nonce, "dapp")
    # a replay is told apart from a nonce this server never issued
    assert await _reason(book, nonce, "dapp") == "nonce_replay"
    assert await _reason(book, new_nonce(), "dapp") == "nonce_unknown"


async def test_a_nonce_bound_to_another_client_is_refused_and_left_usable() -> None:
    book, _, _ = _book()
    nonce = await book.issue("dapp")
    assert await _reason(book, nonce, "intruder") == "nonce_binding"
    await book.consume(nonce, "dapp")  # untouched by the refused attempt


async def test_a_nonce_expires_after_its_ttl() -> None:
    book, clock, _ = _book()
    assert book.ttl == TTL
    nonce = await book.issue("dapp")
    clock.advance(TTL - 0.001)
    kept = await book.issue("dapp")
    await book.consume(kept, "dapp")  # (a second one, still inside its own TTL)
    clock.advance(0.001)  # exactly TTL after issue: gone
    assert await _reason(book, nonce, "dapp") == "nonce_unknown"


async def test_the_used_marker_outlives_the_use_by_one_ttl() -> None:
    book, clock, _ = _book()
    nonce = await book.issue("dapp")
    clock.advance(TTL - 1)
    await book.consume(nonce, "dapp")  # used just before it would have expired
    clock.advance(TTL - 1)
    assert await _reason(book, nonce, "dapp") == "nonce_replay"
    clock.advance(1)
    assert await _reason(book, nonce, "dapp") == "nonce_unknown"


async def test_a_refused_hold_stores_nothing() -> None:
    book, _, store = _book()
    held: list[str] = []

    async def refuse(nonce: str) -> None:
        held.append(nonce)
        raise RateLimited("too many outstanding nonces", retry_after=30)

    with pytest.raises(RateLimited):
        await book.issue("dapp", hold=refuse)
    assert len(held) == 1 and len(store) == 0
    assert await _reason(book, held[0], "dapp") == "nonce_unknown"


async def test_the_hold_sees_the_nonce_that_is_stored() -> None:
    book, _, _ = _book()
    held: list[str] = []

    async def hold(nonce: str) -> None:
        held.append(nonce)

    nonce = await book.issue("dapp", hold=hold)
    assert held == [nonce]
    await book.consume(nonce, "dapp")


async def test_kinds_are_separate_namespaces() -> None:
    clock = FixedClock(T0)
    store = MemoryStore(monotonic=clock.now)
    siwe, did = NonceBook(store, ttl=TTL), NonceBook(store, ttl=TTL, kind="c")
    nonce = await siwe.issue("dapp")
    assert await _reason(did, nonce, "dapp") == "nonce_unknown"
    await siwe.consume(nonce, "dapp")
