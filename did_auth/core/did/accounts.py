"""The Ethereum account behind a subject DID (did:pkh eip155, did:ethr).

One wallet is one account on every EVM chain: second factors, rate limits, backoff and the
revocation indexes are keyed by it. Pure: coincurve and the standard library only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from did_auth.core.did.ethr_did import parse_did_ethr
from did_auth.core.errors import DidAuthError

__all__ = ["SubjectAccount", "account_key", "account_of", "subject_account"]

_ETHR = re.compile(r"^did:ethr:(?:[A-Za-z0-9]+:)?(0x[0-9a-fA-F]{40})$")
_PKH = re.compile(r"^did:pkh:eip155:(\d{1,20}):(0x[0-9a-fA-F]{40})$")
_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")


@dataclass(frozen=True, slots=True)
class SubjectAccount:
    """The chain a subject lives on and its account there (lower-case address); for a
    did:ethr subject the account is the DID's identity address."""

    chain_id: int
    account: str
    ethr: bool = False


def _ethr_account(sub: str) -> SubjectAccount | None:
    try:
        did = parse_did_ethr(sub)
    except DidAuthError:
        return None
    return SubjectAccount(did.chain_id, did.address.lower(), ethr=True)


def subject_account(sub: str) -> SubjectAccount | None:
    """The (chain, account) of a did:pkh eip155 or did:ethr subject, else None."""
    m = _PKH.match(sub)
    if m:
        return SubjectAccount(int(m.group(1)), m.group(2).lower())
    return _ethr_account(sub) if sub.startswith("did:ethr:") else None


def account_of(sub: str) -> str | None:
    """The Ethereum account behind a subject (did:pkh eip155, did:ethr), lower case."""
    m = _PKH.match(sub)
    if m:
        return m.group(2).lower()
    m = _ETHR.match(sub)
    if m:
        return m.group(1).lower()
    if sub.startswith("did:ethr:"):
        # The other did:ethr forms (a public key, a network name with a colon): the
        # identity address the method derives from the identifier.
        subject = _ethr_account(sub)
        return subject.account if subject is not None else None
    return None


def account_key(subject: str) -> str:
    """One key per wallet for second factors, rate limits and backoff: an EOA is the same
    account on every EVM chain, so `did:pkh:eip155:<any chain>:<addr>`, `did:ethr:[<net>:]<addr>`
    and a bare `0x` address (any letter case) all map to `eip155:<lower-case address>`.
    Any other subject (did:key) is its own key."""
    if _ADDRESS.match(subject):
        return f"eip155:{subject.lower()}"
    account = account_of(subject)
    return f"eip155:{account}" if account is not None else subject
