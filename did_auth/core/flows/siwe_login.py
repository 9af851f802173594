"""EIP-4361 Sign-In with Ethereum: verify a signed message and issue tokens.

EIP-4361 §"Verifying a signed message": the relying party MUST check the signature, that
`domain` matches its origin, that `nonce` is one it issued and not yet used, and MUST
enforce `expiration-time` and `not-before`. Every check is on; none can be switched off.
Checks that change no state run first; the nonce is consumed last and atomically, so a
rejected request never burns it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from did_auth.config.settings import ClientConfig, Settings
from did_auth.core.errors import InvalidGrant, InvalidRequest
from did_auth.core.flows.guard import LoginGuard, RequestContext
from did_auth.core.flows.issuance import issue_for_proof
from did_auth.core.flows.nonces import NonceBook
from did_auth.core.flows.proof_request import ProofFlow, ProofRequest
from did_auth.core.flows.registry_checks import RegistryGate
from did_auth.core.flows.revocations import RevocationBook
from did_auth.core.flows.signatures import SignatureChecker
from did_auth.core.policy.clients import check_chain, check_domain, check_uri, get_client
from did_auth.core.policy.scopes import parse_scope, resolve_audience, resolve_scopes
from did_auth.core.signatures.eip191 import parse_hex_signature
from did_auth.core.siwe import SiweMessage
from did_auth.core.siwe.recaps import recap_scopes
from did_auth.core.siwe.verify import check_times
from did_auth.core.tokens.issue import Grant, TokenIssuer
from did_auth.core.tokens.sessions import SessionStore

__all__ = [
    "SignedMessageChecks",
    "SiweLogin",
    "SiweRequest",
    "check_message_binding",
    "check_signed_message",
    "pkh_did",
]

MAX_MESSAGE_CHARS = 16 * 1024
MAX_SIGNATURE_HEX = 2 + 2 * 16 * 1024


def pkh_did(chain_id: int, address: str) -> str:
    """did:pkh (CAIP-10): did:pkh:eip155:<chainId>:<EIP-55 address>."""
    return f"did:pkh:eip155:{chain_id}:{address}"


def check_message_binding(
    settings: Settings, client: ClientConfig, msg: SiweMessage, now: float
) -> None:
    """EIP-4361 §"Verifying a signed message": the chain, `domain`, `uri` and the times
    (`expiration-time`, `not-before`, `issued-at`) the client allows."""
    check_chain(client, msg.chain_id)
    check_domain(client, msg.domain)
    check_uri(client, msg.uri, msg.scheme)
    check_times(msg, now, settings.clock_skew)


class SignedMessageChecks(Protocol):
    """What checks a signed EIP-4361 message (a login, an OTP re-enrolment)."""

    nonces: NonceBook
    signatures: SignatureChecker
    guard: LoginGuard
    registry: RegistryGate | None


async def check_signed_message(
    checks: SignedMessageChecks,
    msg: SiweMessage,
    text: str,
    signature: bytes,
    client_id: str,
    ctx: RequestContext,
) -> None:
    """The nonce, the signature (charged to the account's budgets), the chain's
    RevocationRegistry, then the nonce consumed."""
    # EIP-4361: the relying party MUST check "that `nonce` is one it issued and not yet
    # used". Read here, before the signature (a contract wallet's check is chain work of
    # the signer's choosing, up to verify_timeout): no work for a nonce this server did
    # not hand this client. The atomic consume below stays last.
    await checks.nonces.peek(msg.nonce, client_id)
    try:
        await checks.signatures.check(
            chain_id=msg.chain_id,
            address=msg.address,
            message=text.encode(),
            signature=signature,
            source=ctx.ip,
        )
    except InvalidGrant:
        await checks.guard.proof_failed(ctx, client_id, msg.address)
        raise
    # Only a verified signature is charged to the account's own budget.
    await checks.guard.proof_verified(ctx, client_id, msg.address)
    # The chain's RevocationRegistry (one pinned read; chain down -> 503):
    # a suspended account, or a message issued at or before its revokeAll, is refused.
    if checks.registry is not None:
        await checks.registry.check_siwe_login(
            chain_id=msg.chain_id, address=msg.address, issued_at=msg.issued_at_epoch
        )
    # Last: single use, atomic (GETDEL / compare-and-delete). Two concurrent submissions
    # of one signed message cannot both pass this line.
    await checks.nonces.consume(msg.nonce, client_id)


@dataclass
class SiweRequest(ProofRequest):
    message: Any
    signature: Any
    userinfo: bool = False  # an OpenID Connect login: `Grant.userinfo`


@dataclass
class SiweLogin(ProofFlow):
    nonces: NonceBook
    signatures: SignatureChecker
    issuer: TokenIssuer
    sessions: SessionStore
    revocations: RevocationBook | None = None

    async def verify(self, req: SiweRequest) -> tuple[dict[str, Any], Grant]:
        client = get_client(self.settings, req.client_id)
        if not isinstance(req.message, str) or not req.message:
            raise InvalidRequest("message is required (the exact EIP-4361 text)")
        if len(req.message) > MAX_MESSAGE_CHARS:
            raise InvalidRequest("message too long")
        if not isinstance(req.signature, str) or len(req.signature) > MAX_SIGNATURE_HEX:
            raise InvalidRequest("signature must be 0x-prefixed hex")
        msg = SiweMessage.from_text(req.message)
        await self.guard.before_proof(req.ctx, client.client_id, msg.address)
        now = self.clock.now()
        check_message_binding(self.settings, client, msg, now)
        audience = resolve_audience(client, req.audience, issuer=self.settings.issuer)
        scopes = resolve_scopes(
            self.settings,
            client,
            parse_scope(req.scope),
            signed=recap_scopes(msg, audience),
            step_up_ok=req.otp is not None,
        )
        signature = parse_hex_signature(req.signature)
        await check_signed_message(
            self, msg, req.message, signature, client.client_id, req.ctx
        )
        sub = pkh_did(msg.chain_id, msg.address)
        return await issue_for_proof(
            self, req, "siwe", sub, client.client_id, audience, scopes, now, userinfo=req.userinfo
        )
