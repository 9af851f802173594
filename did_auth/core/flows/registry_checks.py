"""On-chain revocation state in login, refresh and introspection decisions.

`contracts/RevocationRegistry.sol` keeps, per account: `isSuspended`, `revokedBefore` (unix
seconds; everything authenticated at or before it is dead, 0 = never) and revoked ids. One
decision reads all of it with one `status(account, ids)` call pinned to one block
(`RegistryStatusReader`, implemented over JSON-RPC by `did_auth.adapters.chain.registries`); the
rules below are pure functions of that snapshot, so they are unit-tested without a chain:

* `check_login(state, issued_at)`: a suspended account cannot log in, and a SIWE message
  issued at or before `revokedBefore` is refused: a new login with an old signature must
  not resurrect what `revokeAll()` killed.
* `check_session(state, auth_time, sid, key_ids)`: a session (refresh, introspection) dies
  when its account is suspended, when its `auth_time` is at or before `revokedBefore`
  (the one rule `revoked_before_covers`, which the watcher applies too), when its `sid` was
  revoked (`revoke(sid)`), or when the key it was authenticated with was revoked
  (`revoke(key_id(address))`).

Refusals are `AccessDenied` (403 `access_denied`) with reason `suspended` or `revoked` (the
audit trail counts both as `revoked_use` anomalies); the description tells which rule hit.

Ids: a session id is 32 random bytes, directly the registry's `bytes32 id`. A key id is the
key's 20-byte address left-padded with 12 zero bytes (the ABI encoding of an `address`), so
`revoke(bytes32(uint256(uint160(key))))` revokes every session authenticated with that key.
A random sid has those 12 zero bytes with probability 2^-96, so the two never collide.

Suspension and revokeAll() bind to the *account*, not to the chain a login message names:
the registry consulted for a subject on chain C (`did:pkh:eip155:<C>:<addr>` from SIWE, or
the did:ethr network C) is the *authoritative* one for C: C's own `revocation_registry` (or
the embedded chain's), or that of the `[[chains]]` entry listing C in
`revocation_registry_for`. An EOA is the same account on every EVM chain, so a suspension
on the authoritative registry holds for logins signed for any chain it governs. When any
registry is configured, a login, refresh or DID login on a chain no registry governs is
refused (`access_denied`, reason `no_registry_authority`; settings validation already
refuses clients allowing such chains): fail closed, never skipped. With no registry
configured at all, and for `did:key`, there is no on-chain revocation state to check.

Fail closed: a chain with a registry that cannot be read makes the decision raise
`TemporarilyUnavailable` (503); a check is never skipped. No web3 here (flows stay pure).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from did_auth.core.did.accounts import SubjectAccount, subject_account
from did_auth.core.errors import AccessDenied
from did_auth.core.flows.revocations import RevocationBook, key_address, revoked_before_covers
from did_auth.core.tokens.sessions import Session

__all__ = [
    "RegistryGate",
    "RegistryState",
    "RegistryStatusReader",
    "SubjectAccount",
    "check_login",
    "check_session",
    "key_address",
    "key_id",
    "key_id_address",
    "subject_account",
]

_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
_BYTES32 = re.compile(r"^0x[0-9a-fA-F]{64}$")
_KEY_PAD = "0x" + "00" * 12


def key_id(address: str) -> str:
    """The registry id of an Ethereum key: its address left-padded to 32 bytes (lower case)."""
    if not _ADDRESS.match(address):
        raise ValueError("not a 0x address")
    return _KEY_PAD + address[2:].lower()


def key_id_address(id_: str) -> str | None:
    """The key address a registry id names (12 leading zero bytes), else None (a sid)."""
    low = id_.lower()
    if _BYTES32.match(low) and low.startswith(_KEY_PAD):
        return "0x" + low[len(_KEY_PAD) :]
    return None


@dataclass(frozen=True, slots=True)
class RegistryState:
    """`RevocationRegistry.status(account, ids)` at one block."""

    chain_id: int
    account: str  # lower-case 0x address
    suspended: bool
    revoked_before: int  # unix seconds; 0: never
    revoked: Mapping[str, bool] = field(default_factory=dict)  # lower-case 0x bytes32 id
    block: int | None = None  # the block read, when known

    def is_revoked(self, id_: str) -> bool:
        return bool(self.revoked.get(id_.lower(), False))


def check_login(state: RegistryState, issued_at: float) -> None:
    """Refuse a login of a suspended account, or one signed at or before `revokedBefore`."""
    if state.suspended:
        raise AccessDenied("the account is suspended", reason="suspended")
    if revoked_before_covers(state.revoked_before, issued_at):
        raise AccessDenied(
            "the account revoked every login signed before "
            f"{state.revoked_before} (RevocationRegistry.revokeAll); sign a new message",
            reason="revoked",
        )


def check_session(
    state: RegistryState, auth_time: float, sid: str, key_ids: Sequence[str] = ()
) -> None:
    """Refuse a session (refresh, introspection) the registry says is dead."""
    if state.suspended:
        raise AccessDenied("the account is suspended", reason="suspended")
    if revoked_before_covers(state.revoked_before, auth_time):
        raise AccessDenied(
            "the account revoked its sessions on chain (revokeAll)", reason="revoked"
        )
    if state.is_revoked(sid):
        raise AccessDenied("the session was revoked on chain (revoke(sid))", reason="revoked")
    for kid in key_ids:
        if state.is_revoked(kid):
            raise AccessDenied(
                "the key this session was authenticated with was revoked on chain",
                reason="revoked",
            )


class RegistryStatusReader(Protocol):
    """Reads `status(account, ids)` of a chain's RevocationRegistry (one pinned read)."""

    def authority(self, chain_id: int) -> int | None:
        """The chain whose RevocationRegistry governs accounts on `chain_id`, else None."""
        ...

    def any_registry(self) -> bool:
        """Whether any RevocationRegistry is configured at all."""
        ...

    async def status(self, chain_id: int, account: str, ids: Sequence[str]) -> RegistryState:
        """Raise `TemporarilyUnavailable` when the chain cannot answer."""
        ...


def _session_key_ids(session: Session) -> list[str]:
    address = key_address(session.extra.get("auth_key")) if session.extra else None
    return [key_id(address)] if address is not None else []


@dataclass
class RegistryGate:
    """The registry checks the flows run; `revocations` (when given) makes a refusal stick:
    the refused session is revoked in the store and announced on the feed at once, without
    waiting for the watcher."""

    reader: RegistryStatusReader
    revocations: RevocationBook | None = None

    def _authority(self, chain_id: int) -> int | None:
        """The registry chain to read for an account on `chain_id`; None: nothing to read
        (no registry configured anywhere). Raise when registries exist but none governs
        `chain_id`: such a chain must not be a way around a suspension (fail closed)."""
        authority = self.reader.authority(chain_id)
        if authority is None and self.reader.any_registry():
            raise AccessDenied(
                f"chain {chain_id} is governed by no RevocationRegistry "
                "(revocation_registry_for); logins for it are refused",
                reason="no_registry_authority",
            )
        return authority

    async def check_siwe_login(self, *, chain_id: int, address: str, issued_at: float) -> None:
        """At SIWE login, after the signature verified: suspended / signed before revokeAll,
        read from the registry authoritative for the account (not merely the message's chain)."""
        authority = self._authority(chain_id)
        if authority is None:
            return
        state = await self.reader.status(authority, address.lower(), [])
        check_login(state, issued_at)

    async def check_did_login(
        self, *, sub: str, issued_at: float, auth_key: object = None
    ) -> None:
        """The same for a DID login (did:ethr / did:pkh subject): suspended identity, proof
        issued (`iat`) at or before revokedBefore, or a signing key revoked on chain."""
        subject = subject_account(sub)
        authority = None if subject is None else self._authority(subject.chain_id)
        if subject is None or authority is None:
            return
        address = key_address(auth_key)
        ids = [key_id(address)] if address is not None else []
        state = await self.reader.status(authority, subject.account, ids)
        check_login(state, issued_at)
        for kid in ids:
            if state.is_revoked(kid):
                raise AccessDenied("the signing key was revoked on chain", reason="revoked")

    async def check_session(self, session: Session) -> None:
        """Raise `AccessDenied` when the registry says `session` is dead (and revoke it)."""
        subject = subject_account(session.sub)
        if subject is None:
            return
        try:
            authority = self._authority(subject.chain_id)
        except AccessDenied:
            if self.revocations is not None and not session.revoked:
                await self.revocations.revoke_sid(session.sid, reason="chain_ungoverned")
            raise
        if authority is None:
            return
        keys = _session_key_ids(session)
        state = await self.reader.status(authority, subject.account, [session.sid, *keys])
        try:
            check_session(state, session.auth_time, session.sid, keys)
        except AccessDenied as exc:
            if self.revocations is not None and not session.revoked:
                await self.revocations.revoke_sid(session.sid, reason=f"chain_{exc.reason}")
            raise

    async def session_allowed(self, session: Session) -> bool:
        """For introspection: False when the registry says the session is dead."""
        try:
            await self.check_session(session)
        except AccessDenied:
            return False
        return True
