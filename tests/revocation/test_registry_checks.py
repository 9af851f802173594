"""Unit tests: the pure registry decision helpers, the gate over a fake reader, event
decoding and the watcher cursor (no chain, no server)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest
from eth_abi.abi import encode
from eth_utils.crypto import keccak

from did_auth.adapters.chain.watcher import MAX_RECENT, Cursor, decode_event
from did_auth.adapters.store.memory import MemoryStore
from did_auth.core.clock import FixedClock
from did_auth.core.errors import AccessDenied, TemporarilyUnavailable
from did_auth.core.flows.registry_checks import (
    RegistryGate,
    RegistryState,
    check_login,
    check_session,
    key_address,
    key_id,
    key_id_address,
    subject_account,
)
from did_auth.core.flows.revocations import RevocationBook
from did_auth.core.tokens.sessions import Session, SessionStore

ACCOUNT = "0x" + "ab" * 20
OTHER = "0x" + "cd" * 20
SID = "0x" + os.urandom(32).hex()
T = 1_800_000_000


def state(**over: object) -> RegistryState:
    base: dict[str, object] = {
        "chain_id": 31337,
        "account": ACCOUNT,
        "suspended": False,
        "revoked_before": 0,
        "revoked": {},
    }
    base.update(over)
    return RegistryState(**base)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- ids


def test_key_ids_are_left_padded_addresses() -> None:
    kid = key_id("0x" + "AB" * 20)
    assert kid == "0x" + "00" * 12 + "ab" * 20
    assert key_id_address(kid) == ACCOUNT
    assert key_id_address(kid.upper().replace("0X", "0x")) == ACCOUNT
    assert key_id_address("0x" + "ff" * 32) is None  # a session id
    assert key_id_address("0x1234") is None
    with pytest.raises(ValueError):
        key_id("not an address")


def test_key_address_accepts_bare_and_caip10_forms() -> None:
    assert key_address("0x" + "AB" * 20) == ACCOUNT
    assert key_address(f"eip155:31337:0x{'AB' * 20}") == ACCOUNT
    assert key_address(f"eip155:31337:{ACCOUNT}") == ACCOUNT
    assert key_address("did:key:z6Mk...#z6Mk") is None
    assert key_address(None) is None
    assert key_address(42) is None


def test_subject_account() -> None:
    pkh = subject_account(f"did:pkh:eip155:8453:0x{'AB' * 20}")
    assert pkh is not None and (pkh.chain_id, pkh.account, pkh.ethr) == (8453, ACCOUNT, False)
    ethr = subject_account(f"did:ethr:0x7a69:{ACCOUNT}")
    assert ethr is not None and (ethr.chain_id, ethr.account, ethr.ethr) == (31337, ACCOUNT, True)
    mainnet = subject_account(f"did:ethr:{ACCOUNT}")
    assert mainnet is not None and mainnet.chain_id == 1
    # a compressed public key identifier: the identity is its address
    pub = "0x02" + "79be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798"
    keyed = subject_account(f"did:ethr:0x7a69:{pub}")
    assert keyed is not None and keyed.account == "0x7e5f4552091a69125d5dfcb7b8c2659029395bdf"
    for sub in ("did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK",
                "did:ethr:nonsense:0x12", "did:pkh:solana:abc:def", "", "did:ethr:0x7a69:0xZZ"):
        assert subject_account(sub) is None


# ------------------------------------------------------------------------ decisions


def test_check_login() -> None:
    check_login(state(), T)
    check_login(state(revoked_before=T - 1), T)  # signed after the revokeAll block
    with pytest.raises(AccessDenied) as e:
        check_login(state(revoked_before=T), T)  # at: refused
    assert e.value.reason == "revoked" and e.value.status == 403
    with pytest.raises(AccessDenied):
        check_login(state(revoked_before=T), T - 100)  # an old signature
    with pytest.raises(AccessDenied):
        check_login(state(revoked_before=T), T + 0.9)  # within the block's second
    check_login(state(revoked_before=T), T + 1)
    with pytest.raises(AccessDenied) as e:
        check_login(state(suspended=True), T)
    assert e.value.reason == "suspended"


def test_check_session() -> None:
    other_sid = "0x" + "11" * 32
    kid = key_id(OTHER)
    check_session(state(), T, SID, [kid])
    check_session(state(revoked_before=T - 1, revoked={other_sid: True}), T, SID, [kid])
    for st in (state(revoked_before=T), state(revoked_before=T + 5)):
        with pytest.raises(AccessDenied) as e:
            check_session(st, T, SID)
        assert e.value.reason == "revoked"
    with pytest.raises(AccessDenied) as e:
        check_session(state(revoked={SID.lower(): True}), T, SID.upper().replace("0X", "0x"))
    assert "revoke(sid)" in e.value.description
    with pytest.raises(AccessDenied) as e:
        check_session(state(revoked={kid: True}), T, SID, [kid])
    assert "key" in e.value.description
    with pytest.raises(AccessDenied) as e:
        check_session(state(suspended=True), T, SID)
    assert e.value.reason == "suspended"


# ------------------------------------------------------------------------------ gate


@dataclass
class FakeReader:
    chains: set[int]
    answer: RegistryState | Exception
    reads: list[tuple[int, str, tuple[str, ...]]] = field(default_factory=list)
    governed: dict[int, int] = field(default_factory=dict)  # chain id -> authoritative chain

    def authority(self, chain_id: int) -> int | None:
        if chain_id in self.chains:
            return chain_id
        return self.governed.get(chain_id)

    def any_registry(self) -> bool:
        return bool(self.chains)

    async def status(self, chain_id: int, account: str, ids: Sequence[str]) -> RegistryState:
        self.reads.append((chain_id, account, tuple(ids)))
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


async def _book() -> tuple[RevocationBook, SessionStore, MemoryStore]:
    store = MemoryStore()
    clock = FixedClock(T)
    sessions = SessionStore(store, clock, refresh_ttl=3600, max_lifetime=86400)
    return RevocationBook(store, sessions, clock, 300, 86400), sessions, store


def _session(sub: str, **extra: object) -> Session:
    return Session(
        sid="0x" + os.urandom(32).hex(), sub=sub, client_id="dapp", audience="trading-api",
        scopes=("account:read",), auth_time=T - 10, amr=("siwe",), created_at=0.0,
        expires_at=0.0, extra=dict(extra),
    )


async def test_gate_refuses_chains_no_registry_governs() -> None:
    # Fail closed: with a registry configured, a chain none governs is no way around it
    # (this test used to assert the insecure skip).
    reader = FakeReader({31337}, state(suspended=True))
    gate = RegistryGate(reader)
    with pytest.raises(AccessDenied) as e:
        await gate.check_siwe_login(chain_id=1, address=ACCOUNT, issued_at=T)
    assert e.value.reason == "no_registry_authority"
    with pytest.raises(AccessDenied):
        await gate.check_session(_session(f"did:pkh:eip155:1:{ACCOUNT}"))
    await gate.check_session(_session("did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK"))
    assert reader.reads == []
    # No registry anywhere: nothing to check.
    await RegistryGate(FakeReader(set(), state(suspended=True))).check_siwe_login(
        chain_id=1, address=ACCOUNT, issued_at=T
    )
    # Chain 1 governed by 31337's registry: the suspension there holds for chain 1 logins.
    governed = FakeReader({31337}, state(suspended=True), governed={1: 31337})
    with pytest.raises(AccessDenied) as e:
        await RegistryGate(governed).check_siwe_login(chain_id=1, address=ACCOUNT, issued_at=T)
    assert e.value.reason == "suspended" and governed.reads == [(31337, ACCOUNT, ())]
    with pytest.raises(AccessDenied):
        await gate.check_siwe_login(chain_id=31337, address=ACCOUNT.upper().replace("0X", "0x"),
                                    issued_at=T)
    assert reader.reads == [(31337, ACCOUNT, ())]


async def test_gate_reads_sid_and_key_and_makes_a_refusal_stick() -> None:
    book, sessions, _ = await _book()
    s, _ = await sessions.create(
        _session(f"did:ethr:0x7a69:{ACCOUNT}", auth_key=f"eip155:31337:{OTHER}")
    )
    reader = FakeReader({31337}, state(revoked={key_id(OTHER): True}))
    gate = RegistryGate(reader, book)
    assert await gate.session_allowed(s) is False
    assert reader.reads == [(31337, ACCOUNT, (s.sid, key_id(OTHER)))]
    stored = await sessions.get(s.sid)
    assert stored is not None and stored.revoked
    feed = await book.feed(None)
    assert feed["revoked"][0]["sid"] == s.sid and feed["revoked"][0]["reason"] == "chain_revoked"


async def test_gate_fails_closed() -> None:
    book, sessions, _ = await _book()
    s, _ = await sessions.create(_session(f"did:pkh:eip155:31337:{ACCOUNT}"))
    gate = RegistryGate(FakeReader({31337}, TemporarilyUnavailable("down")), book)
    with pytest.raises(TemporarilyUnavailable):
        await gate.session_allowed(s)
    with pytest.raises(TemporarilyUnavailable):
        await gate.check_siwe_login(chain_id=31337, address=ACCOUNT, issued_at=T)
    stored = await sessions.get(s.sid)
    assert stored is not None and not stored.revoked  # an outage revokes nothing


async def test_did_login_check() -> None:
    reader = FakeReader({31337}, state(revoked={key_id(OTHER): True}))
    gate = RegistryGate(reader)
    await gate.check_did_login(sub=f"did:ethr:0x7a69:{ACCOUNT}", issued_at=T, auth_key=None)
    with pytest.raises(AccessDenied):
        await gate.check_did_login(
            sub=f"did:ethr:0x7a69:{ACCOUNT}", issued_at=T, auth_key=f"eip155:31337:{OTHER}"
        )


# ---------------------------------------------------------------------------- events


REV = "0x" + "11" * 20
DIDREG = "0x" + "22" * 20


def _log(address: str, topics: list[bytes], data: bytes = b"", **over: object) -> dict[str, object]:
    entry: dict[str, object] = {
        "address": address, "topics": topics, "data": data, "blockNumber": 7, "logIndex": 2,
        "transactionHash": b"\x33" * 32, "removed": False,
    }
    entry.update(over)
    return entry


def _word(address: str) -> bytes:
    return b"\0" * 12 + bytes.fromhex(address[2:])


def test_decode_registry_events() -> None:
    def dec(entry: dict[str, object]) -> object:
        return decode_event(entry, revocation_registry=REV, did_registry=DIDREG)

    sid = os.urandom(32)
    ev = dec(_log(REV, [keccak(text="Revoked(address,bytes32,address)"), _word(ACCOUNT), sid,
                        _word(OTHER)]))
    assert ev is not None and (ev.kind, ev.account, ev.id, ev.block, ev.log_index) == (  # type: ignore[attr-defined]
        "revoked", ACCOUNT, "0x" + sid.hex(), 7, 2)
    ev = dec(_log(REV, [keccak(text="RevokedAll(address,uint256)"), _word(ACCOUNT)],
                  encode(["uint256"], [T])))
    assert ev is not None and (ev.kind, ev.before) == ("revoked_all", T)  # type: ignore[attr-defined]
    ev = dec(_log(REV, [keccak(text="Suspended(address,address)"), _word(ACCOUNT), _word(OTHER)]))
    assert ev is not None and ev.kind == "suspended"  # type: ignore[attr-defined]
    data = encode(["bytes32", "address", "uint256", "uint256"],
                  [b"sigAuth".ljust(32, b"\0"), OTHER, T, 3])
    ev = dec(_log(DIDREG, [keccak(text="DIDDelegateChanged(address,bytes32,address,uint256,uint256)"),
                           _word(ACCOUNT)], data))
    assert ev is not None and (ev.kind, ev.delegate, ev.valid_to, ev.sig_auth) == (  # type: ignore[attr-defined]
        "delegate", OTHER, T, True)
    ev = dec(_log(DIDREG, [keccak(text="DIDOwnerChanged(address,address,uint256)"), _word(ACCOUNT)],
                  encode(["address", "uint256"], [OTHER, 0])))
    assert ev is not None and (ev.kind, ev.owner) == ("owner", OTHER)  # type: ignore[attr-defined]
    # the same event from another contract, a removed log, truncated data: ignored
    assert dec(_log(OTHER, [keccak(text="Suspended(address,address)"), _word(ACCOUNT)])) is None
    assert dec(_log(REV, [keccak(text="Suspended(address,address)"), _word(ACCOUNT)],
                    removed=True)) is None
    assert dec(_log(REV, [keccak(text="RevokedAll(address,uint256)"), _word(ACCOUNT)], b"")) is None
    assert dec(_log(REV, [])) is None
    assert dec({"address": REV, "topics": ["zz"]}) is None


def test_cursor_round_trip_and_bounded_history() -> None:
    c = Cursor(10, "0xaa", "scope", [(10, "0xaa")])
    for n in range(11, 11 + MAX_RECENT + 5):
        c = c.advanced(n, f"0x{n:x}")
    assert len(c.recent) == MAX_RECENT and c.recent[-1] == (c.number, c.hash)
    back = Cursor.from_bytes(c.to_bytes())
    assert back == c
    assert Cursor.from_bytes(b"not json") is None
    assert Cursor.from_bytes(b'{"number": 1}') is None
