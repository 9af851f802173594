"""The revocation feed (`GET /revocations`) and gasless on-chain revocation
(`POST /revocations/relay`).

An account (EOA or EIP-1271 wallet) signs the RevocationRegistry's EIP-712 message
`Revoke(account, id, nonce, deadline)` or `RevokeAll(account, nonce, deadline)` (domain
"did-auth RevocationRegistry", version "1", the chain's id, the registry's address) and
posts it to the relay; did-auth relays it on chain (`revokeSigned` / `revokeAllSigned`),
paid by the chain's `relayer_private_key`:

    POST /revocations/relay
    {"kind": "revoke" | "revokeAll", "account": "0x…", "id": "0x…(bytes32, revoke only)",
     "deadline": <unix seconds>, "signature": "0x…", "chain_id": 31337}
    -> 200 {"tx_hash": "0x…"}

Errors: no relayer key for that chain → 400 `invalid_request` ("no relayer configured");
malformed input → 400 `invalid_request`; a signature that is not the account's for this
message and its *current* nonce, or an expired deadline → 400 `invalid_grant` (checked off
chain and by simulation, before any gas is spent); the chain unreachable → 503. Limited per
client IP (every request) and per account (only requests whose signature verified: the
account is the caller's choice; the relayer's gas is a shared budget). The transaction is sent,
not awaited: the watcher applies the resulting `Revoked` / `RevokedAll` event like any other.
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.types import Receive, Scope, Send

from did_auth.adapters.monitoring.audit import AuditEvent, Outcome
from did_auth.core.flows.revocation_stream import RevocationStream
from did_auth.core.policy.ratelimit import Rate, RateLimiter, check_all, client_ip_key, enforce
from did_auth.core.signatures.eip191 import parse_hex_signature
from did_auth.edge.api.context import request_context
from did_auth.edge.api.deps import NO_STORE, ServicesDep
from did_auth.edge.api.header_timeout import LONG_LIVED

__all__ = [
    "RELAY_PER_ACCOUNT",
    "RELAY_PER_IP",
    "EventStreamResponse",
    "RelayRequest",
    "router",
]

RELAY_PER_IP = Rate(30, 60.0, "relay_per_ip")
RELAY_PER_ACCOUNT = Rate(10, 3600.0, "relay_per_account")

router = APIRouter()


@router.get("/revocations")
async def revocations(
    svc: ServicesDep, since: str | None = None, limit: str | None = None
) -> Response:
    # Both parameters are validated by the feed itself (400 before any store call).
    return JSONResponse(await svc.revocations.feed(since, limit), headers=NO_STORE)


class EventStreamResponse(StreamingResponse):
    """A revocation stream as `text/event-stream` (WHATWG HTML §9.2). Starlette ends the
    body when the client disconnects (it listens for `http.disconnect` meanwhile); the
    stream's slot is given back in every case, even if the body never started."""

    def __init__(self, stream: RevocationStream) -> None:
        super().__init__(
            stream.events(),
            media_type="text/event-stream",
            headers={
                **NO_STORE,
                # nginx would otherwise buffer the events (proxy_buffering): no push.
                "X-Accel-Buffering": "no",
            },
        )
        self.stream = stream

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope[LONG_LIVED] = True  # a graceful shutdown closes it (api/header_timeout.py)
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.stream.close()
            await self.body_iterator.aclose()  # type: ignore[attr-defined]


@router.get(
    "/revocations/stream",
    responses={
        200: {
            "description": "Server-Sent Events: `id` the feed cursor, `data` a feed entry",
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
        }
    },
)
async def revocation_stream(
    request: Request, svc: ServicesDep, since: str | None = None, heartbeat: str | None = None
) -> Response:
    """The feed pushed as Server-Sent Events: `id` = feed cursor, `data` = the feed's entry;
    `Last-Event-ID` (or `since`) resumes; a `: ok` comment at least every 5 s (or every
    `heartbeat` seconds, 0.5 to 5). Open to the same callers as `GET /revocations`."""
    stream = svc.revocation_streams.open(
        since=since,
        last_event_id=request.headers.get("last-event-id"),
        ip=request_context(request).ip,
        heartbeat=heartbeat,
    )
    return EventStreamResponse(stream)


class RelayRequest(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")

    kind: Literal["revoke", "revokeAll"]
    account: str = Field(pattern=r"^0x[0-9a-fA-F]{40}$")
    id: str | None = Field(default=None, pattern=r"^0x[0-9a-fA-F]{64}$")
    deadline: int = Field(ge=0, lt=2**64)
    signature: str = Field(min_length=4, max_length=2 + 2 * 16 * 1024)
    chain_id: int = Field(gt=0, lt=2**63)


@router.post("/revocations/relay")
async def relay_revocation(request: Request, body: RelayRequest, svc: ServicesDep) -> Response:
    ctx = request_context(request)
    limiter = RateLimiter(svc.store)
    # The per-IP budget first, for every request; the per-account budget only once the
    # account's signature has verified (like verify_per_subject): the account is the
    # caller's choice, so charging it before the check would let anyone spend a victim's
    # budget with garbage and lock the victim out of revoking its own sessions.
    enforce(await check_all(limiter, [(f"relay:ip:{client_ip_key(ctx.ip)}", RELAY_PER_IP)]))

    async def charge_account() -> None:
        key = f"relay:account:{body.account.lower()}"
        enforce(await check_all(limiter, [(key, RELAY_PER_ACCOUNT)]))

    tx_hash = await svc.relayer.relay(
        chain_id=body.chain_id,
        kind=body.kind,
        account=body.account,
        id_=body.id,
        deadline=body.deadline,
        signature=parse_hex_signature(body.signature),
        on_verified=charge_account,
    )
    svc.audit.emit(
        AuditEvent.REVOCATION_APPLIED,
        Outcome.SUCCESS,
        reason="relay_submitted",
        ctx=ctx,
        account=body.account.lower(),
        chain_id=body.chain_id,
        kind=body.kind,
        tx_hash=tx_hash,
    )
    return JSONResponse({"tx_hash": tx_hash}, headers=NO_STORE)
