"""The pure core wired by hand for unit tests: one injected clock drives both the flows and
the in-memory store's expiry, so a TTL or a refill passes by `clock.advance(...)`, in no
real time. EOA signatures only (EIP-191 recovery, no chain); no HTTP, no Redis."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from did_auth.adapters.store.memory import MemoryStore
from did_auth.config.settings import Settings
from did_auth.core.clock import FixedClock
from did_auth.core.flows.dpop_gate import DpopGate
from did_auth.core.flows.guard import LoginGuard, OpenGuard
from did_auth.core.flows.nonces import NonceBook
from did_auth.core.flows.otp import OtpService
from did_auth.core.flows.revocations import RevocationBook
from did_auth.core.flows.signatures import EoaSignatureChecker
from did_auth.core.flows.siwe_login import SiweLogin
from did_auth.core.policy.backoff import OtpBackoff
from did_auth.core.tokens.issue import TokenIssuer
from did_auth.core.tokens.kek import Sealer
from did_auth.core.tokens.keys import KeyRing
from did_auth.core.tokens.local_check import LocalTokenCheck
from did_auth.core.tokens.sessions import SessionStore
from tests import siwe_text

T0 = 1_900_000_000.0
ISS = "https://auth.example"
DAPP_DOMAIN = "localhost:3000"
DAPP_URI = "http://localhost:3000/login"

DAPP: dict[str, Any] = {
    "client_id": "dapp",
    "domains": [DAPP_DOMAIN, "auth.example"],
    "uris": ["http://localhost:3000", ISS],
    "chain_ids": [1, 31337],
    "audiences": ["trading-api", "other-api"],
    "scopes": ["account:read", "trade:write", "wallet:withdraw"],
    "default_scopes": ["account:read"],
    "redirect_uris": ["https://rp.example/cb"],
    "name": "Example dApp",
}


def settings(**over: Any) -> Settings:
    values: dict[str, Any] = {
        "issuer": ISS,
        "clients": [DAPP],
        "scopes": {"wallet:withdraw": {"step_up": True, "max_ttl": 60}},
    }
    values.update(over)
    return Settings(**values)


@dataclass
class Core:
    settings: Settings
    clock: FixedClock
    store: MemoryStore
    sealer: Sealer
    keys: KeyRing
    issuer: TokenIssuer
    sessions: SessionStore
    nonces: NonceBook
    otp: OtpService
    revocations: RevocationBook
    siwe: SiweLogin
    local: LocalTokenCheck
    dpop: DpopGate

    def siwe_text(self, address: str, nonce: str, **over: Any) -> str:
        """An EIP-4361 message for the dApp client, issued now by the injected clock."""
        over.setdefault("issued_at", self.clock.now())
        over.setdefault("domain", DAPP_DOMAIN)
        over.setdefault("uri", DAPP_URI)
        return siwe_text.message(address, nonce, **over)


async def make_core(
    *, guard: LoginGuard | None = None, dpop_nonce: bool = False, **over: Any
) -> Core:
    s = settings(**over)
    clock = FixedClock(T0)
    store = MemoryStore(monotonic=clock.now)  # the store's expiry runs on the same clock
    sealer = Sealer(secrets.token_bytes(32))
    keys = KeyRing(store, sealer, clock, alg=s.signing_alg, max_token_ttl=s.access_token_ttl)
    await keys.load()
    issuer = TokenIssuer(keys, clock, issuer=s.issuer)
    sessions = SessionStore(
        store, clock, refresh_ttl=s.refresh_token_ttl, max_lifetime=s.session_max_lifetime,
        grace=s.refresh_grace,
    )
    nonces = NonceBook(store, ttl=s.nonce_ttl)
    rl = s.rate_limits
    otp = OtpService(
        store, sealer, clock, issuer_name="did-auth",
        backoff=OtpBackoff(store, base=rl.otp_backoff_base, cap=rl.otp_backoff_cap,
                           free_attempts=rl.otp_free_attempts),
    )
    revocations = RevocationBook(store, sessions, clock, access_ttl=s.access_token_ttl,
                                 session_lifetime=s.session_max_lifetime)
    siwe = SiweLogin(
        settings=s, clock=clock, nonces=nonces, signatures=EoaSignatureChecker(),
        issuer=issuer, sessions=sessions, otp=otp, guard=guard or OpenGuard(),
        revocations=revocations,
    )
    local = LocalTokenCheck(keys, store, sessions, clock, issuer=s.issuer)
    dpop = DpopGate(store, clock, secret=secrets.token_bytes(32), require_nonce=dpop_nonce)
    return Core(s, clock, store, sealer, keys, issuer, sessions, nonces, otp, revocations,
                siwe, local, dpop)
