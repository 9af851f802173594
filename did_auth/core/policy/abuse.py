"""Abuse protection at the decision points: rate limits per IP / subject / client, source
backoff for failed proofs, caps on outstanding nonces, anomaly signals.

A wallet signature cannot be guessed, so failed proofs back off the failing *source* (the
IP, and the IP + claimed account pair), never the account alone: an attacker cannot lock a
victim out. The per-subject budget is charged only for proofs whose signature verified, so
nobody can spend another account's budget.
"""

from __future__ import annotations

from did_auth.config.settings import Settings
from did_auth.core.did.accounts import account_key
from did_auth.core.errors import RateLimited
from did_auth.core.policy.backoff import SourceBackoff
from did_auth.core.policy.guard import RequestContext
from did_auth.core.policy.ratelimit import (
    RateLimiter,
    client_ip_key,
    enforce,
    rates_from_config,
)
from did_auth.core.ports import store_keys
from did_auth.core.ports.audit import Audit, AuditEvent, Counters, Outcome
from did_auth.core.ports.store import Store

__all__ = ["AbuseGuard"]


class AbuseGuard:
    def __init__(
        self, settings: Settings, store: Store, audit: Audit, counters: Counters
    ) -> None:
        rl = settings.rate_limits
        self._store = store
        self._audit = audit
        self._counters = counters
        self._limiter = RateLimiter(store)
        self._rates = rates_from_config(rl.model_dump())
        self._outstanding = rl.outstanding_nonces_per_ip
        self._nonce_ttl = settings.nonce_ttl
        self._backoff = SourceBackoff(
            store,
            ip_threshold=rl.source_backoff_ip_threshold,
            pair_threshold=rl.source_backoff_pair_threshold,
            cap=rl.source_backoff_cap,
        )

    # -- issuing nonces / challenges --------------------------------------------------

    def _cap_key(self, client_id: str, ip: str) -> str:
        return store_keys.concurrency_cap(client_id, client_ip_key(ip))

    async def nonce_request(self, ctx: RequestContext, *, kind: str = "nonce") -> None:
        rate = self._rates["challenge_per_ip" if kind == "challenge" else "nonce_per_ip"]
        enforce(await self._limiter.hit(f"{kind}:ip:{client_ip_key(ctx.ip)}", rate))

    async def hold_nonce(self, ctx: RequestContext, client_id: str, nonce: str) -> None:
        """Cap the nonces one client + IP may have outstanding (each lives nonce_ttl)."""
        ok = await self._store.cap_add(
            self._cap_key(client_id, ctx.ip), nonce, self._outstanding, self._nonce_ttl
        )
        if not ok:
            raise RateLimited(
                "too many outstanding nonces for this client and address",
                retry_after=min(self._nonce_ttl, 30),
                reason="outstanding_nonces",
            )

    async def release_nonce(self, ctx: RequestContext, client_id: str, nonce: str) -> None:
        await self._store.cap_remove(self._cap_key(client_id, ctx.ip), nonce)

    # -- proofs (LoginGuard) ----------------------------------------------------------

    async def verify_request(self, ctx: RequestContext) -> None:
        enforce(
            await self._limiter.hit(
                f"verify:ip:{client_ip_key(ctx.ip)}", self._rates["verify_per_ip"]
            )
        )

    # One wallet is one subject: the claimed address / DID is keyed by its account
    # (`account_key`), so the same EOA on another chain or as a did:ethr shares its budgets.

    async def before_proof(self, ctx: RequestContext, client_id: str, claimed: str) -> None:
        await self._backoff.check(ctx.ip, account_key(claimed))

    async def proof_failed(self, ctx: RequestContext, client_id: str, claimed: str) -> None:
        decision = await self._backoff.failure(ctx.ip, account_key(claimed))
        if decision.burst:
            self._counters.anomaly("signature_failure_burst")
            self._audit.emit(
                AuditEvent.SIGNATURE_FAILURE_BURST,
                Outcome.DETECTED,
                reason="signature_failures",
                ctx=ctx,
                client_id=client_id,
                failures=decision.failures,
            )

    async def proof_verified(self, ctx: RequestContext, client_id: str, subject: str) -> None:
        key = account_key(subject)
        enforce(await self._limiter.hit(f"verify:sub:{key}", self._rates["verify_per_subject"]))
        await self._backoff.success(ctx.ip, key)

    # -- other endpoint classes -------------------------------------------------------

    async def endpoint_source(self, ctx: RequestContext, endpoint: str) -> None:
        """/token, /revoke and /introspect per IP (`refresh_per_ip`), charged before the client
        (or resource server) authenticates: failed authentications are budgeted too."""
        prefix = "refresh" if endpoint == "token" else endpoint
        enforce(
            await self._limiter.hit(
                f"{prefix}:ip:{client_ip_key(ctx.ip)}", self._rates["refresh_per_ip"]
            )
        )

    async def endpoint_client(
        self, client_id: str, endpoint: str, public_source: RequestContext | None = None
    ) -> None:
        """/token and /revoke per authenticated client (`token_per_client`): charged only
        after authentication, so nobody can spend another client's budget.

        A public client has no credential (RFC 6749 §2.1): anyone may send its client_id,
        so one bucket for it would be a budget every stranger can drain. Its budget is per
        client and source (`public_source`), on top of the per-IP one."""
        key = f"{endpoint}:client:{client_id}"
        if public_source is not None:
            key += f":ip:{client_ip_key(public_source.ip)}"
        enforce(await self._limiter.hit(key, self._rates["token_per_client"]))

    async def introspect_request(self, resource_server: str) -> None:
        enforce(
            await self._limiter.hit(
                f"introspect:client:{resource_server}", self._rates["introspect_per_client"]
            )
        )
