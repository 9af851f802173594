"""Withdrawals bound to what the wallet signed: `POST /transactions/nonce` and
`POST /transactions/authorize`.

A live session asks for a single-use nonce bound to it (its `sid`), has its own account sign
the withdrawal as EIP-712 typed data (`did_auth.core.signatures.eip712`: domain `did-auth` /
`1` / the login's chain id, primary type `Withdrawal`), adds a second factor, and gets a
short access token whose RFC 9396 `authorization_details` are exactly the signed values.
An API accepts that token once, for exactly that withdrawal (`did_auth_verifier.withdrawals`).

Checks, in this order; everything before the nonce is consumed changes no state (apart
from rate-limit and backoff counters):

1. the body, strictly (`did_auth.core.oauth.authorization_details`, RFC 9396 §5);
2. the details' `audience` is one of the client's API audiences (not did-auth itself), and
   the client may hold `wallet:withdraw`;
3. `expires_at` is in the future and at most `APPROVAL_WINDOW` seconds ahead;
4. exactly one second factor is present and of a kind this server has;
5. the session's subject is an Ethereum account (did:pkh eip155, did:ethr): its chain id is
   the EIP-712 domain's `chainId`, its address the only acceptable signer;
6. the nonce is one this server issued to *this session* and unused (a read);
7. the signature (EIP-712 §Specification: keccak256("\\x19\\x01" ‖ domainSeparator ‖
   hashStruct(message))) by that account: EOA recovery (low-s), EIP-1271, EIP-6492, on the
   same chain layer as logins; failures back off the source like failed logins;
8. the nonce is consumed, atomically (of two concurrent uses exactly one passes);
9. the second factor, after the nonce (as at login: every guess costs a fresh wallet
   signature); a TOTP code is single use and backs off the account;
10. the token: `aud` = the details' audience, scope `wallet:withdraw`, `exp` at most 60 s
    ahead and never after `expires_at`, `auth_time` now (this approval is the
    authentication event), `amr` = the wallet signature (`siwe`, the value logins record
    for a wallet's signature), the second factor's RFC 8176 values (`otp`, `hwk`, `swk`)
    and `mfa` (RFC 8176 §2: "Multiple-factor authentication"), the session's `sid` (a
    revoked session revokes it), `cnf.jkt` when the session's token is DPoP-bound, a fresh
    `jti`. No refresh token.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from did_auth.config.settings import Settings
from did_auth.core.clock import Clock
from did_auth.core.did.accounts import subject_account
from did_auth.core.errors import (
    AccessDenied,
    InvalidAuthorizationDetails,
    InvalidGrant,
    InvalidRequest,
    InvalidScope,
)
from did_auth.core.flows.guard import LoginGuard, RequestContext
from did_auth.core.flows.login import LoginGate
from did_auth.core.flows.nonces import NonceBook
from did_auth.core.flows.second_factor import SecondFactors
from did_auth.core.flows.signatures import SignatureChecker
from did_auth.core.oauth.authorization_details import (
    WithdrawalDetails,
    parse_withdrawal_approval,
)
from did_auth.core.policy.clients import get_client
from did_auth.core.policy.scopes import token_ttl
from did_auth.core.signatures.eip191 import to_checksum_address
from did_auth.core.signatures.eip712 import withdrawal_digest
from did_auth.core.tokens.issue import Grant, TokenIssuer

__all__ = [
    "APPROVAL_WINDOW",
    "FACTOR_MEMBERS",
    "MAX_WITHDRAWAL_TTL",
    "WALLET_AMR",
    "WITHDRAW_SCOPE",
    "Approved",
    "TransactionApprovals",
]

WITHDRAW_SCOPE: Final = "wallet:withdraw"
#: Seconds a withdrawal token lives at most (also capped by the scope's `max_ttl`).
MAX_WITHDRAWAL_TTL: Final = 60
#: `expires_at` may be at most this many seconds ahead (the transaction nonce's lifetime:
#: time for the wallet prompt and the second factor, never a standing approval).
APPROVAL_WINDOW: Final = 300
#: The `amr` value of the wallet's signature: what logins record for it.
WALLET_AMR: Final = "siwe"
#: The body members that carry a second factor.
FACTOR_MEMBERS: Final = ("otp", "webauthn")
# RFC 8176 §2: "mfa" - Multiple-factor authentication.
_MFA: Final = "mfa"


@dataclass(frozen=True, slots=True)
class Approved:
    """An approved withdrawal: the token response and what the audit line names."""

    response: dict[str, Any]
    grant: Grant
    details: WithdrawalDetails
    factor: str
    jti: str


def _session(claims: Mapping[str, Any]) -> tuple[str, str, str]:
    sub, sid, client_id = claims.get("sub"), claims.get("sid"), claims.get("client_id")
    if not (isinstance(sub, str) and isinstance(sid, str) and isinstance(client_id, str)):
        raise AccessDenied("the access token is not a session's", reason="not_a_session")
    return sub, sid, client_id


@dataclass
class TransactionApprovals:
    settings: Settings
    clock: Clock
    nonces: NonceBook  # its own kind: a login nonce is never a transaction nonce
    signatures: SignatureChecker
    issuer: TokenIssuer
    factors: SecondFactors
    gate: LoginGate
    guard: LoginGuard

    async def nonce(self, claims: Mapping[str, Any], ctx: RequestContext) -> dict[str, Any]:
        """A single-use nonce bound to the token's session, within the per-IP nonce budget
        and the cap of nonces one client + IP may hold outstanding."""
        await self.gate.nonce_request(ctx)
        sub, sid, client_id = _session(claims)
        if subject_account(sub) is None:
            raise AccessDenied(
                "withdrawals need a session of an Ethereum account", reason="no_account"
            )

        async def hold(nonce: str) -> None:  # the outstanding cap, before anything is stored
            await self.gate.hold_nonce(ctx, client_id, nonce)

        nonce = await self.nonces.issue(sid, hold=hold)
        return {"nonce": nonce, "expires_in": self.nonces.ttl}

    async def authorize(
        self, claims: Mapping[str, Any], body: object, ctx: RequestContext
    ) -> Approved:
        await self.gate.verify_request(ctx)
        sub, sid, client_id = _session(claims)
        approval = parse_withdrawal_approval(body)
        details = approval.details
        client = get_client(self.settings, client_id)
        if details.audience == self.settings.issuer or details.audience not in client.audiences:
            raise InvalidAuthorizationDetails(
                "the withdrawal's audience is not an API this client may address",
                reason="details_audience",
            )
        if WITHDRAW_SCOPE not in client.scopes:
            raise InvalidScope(
                f"scope {WITHDRAW_SCOPE} is not allowed for this client", reason="scope"
            )
        now = self.clock.now()
        if approval.expires_at <= now:
            raise InvalidGrant("the approval has expired (expires_at)", reason="expired")
        if approval.expires_at > now + APPROVAL_WINDOW:
            raise InvalidRequest(
                f"expires_at must be at most {APPROVAL_WINDOW} s ahead", reason="expires_at"
            )
        factor, proof = self.factors.pick(approval.body, FACTOR_MEMBERS)
        account = subject_account(sub)
        if account is None:
            raise AccessDenied(
                "withdrawals need a session of an Ethereum account", reason="no_account"
            )
        address = to_checksum_address(account.account)
        await self.guard.before_proof(ctx, client_id, address)
        await self._peek(approval.nonce, sid)
        # EIP-712 §Specification: the signed digest of the exact approval; the domain's
        # chainId is the session's chain, so a signature for another chain never matches.
        digest = withdrawal_digest(
            chain_id=account.chain_id,
            audience=details.audience,
            asset=details.asset,
            amount=details.amount,
            destination=details.destination,
            network=details.network,
            nonce=approval.nonce,
            expires_at=approval.expires_at,
        )
        try:
            await self.signatures.check_digest(
                chain_id=account.chain_id,
                address=address,
                digest=digest,
                signature=approval.signature,
                source=ctx.ip,
            )
        except InvalidGrant:
            await self.guard.proof_failed(ctx, client_id, address)
            raise
        await self.guard.proof_verified(ctx, client_id, address)
        # Single use, atomic (compare-and-set), last of the signature's checks.
        await self._consume(approval.nonce, sid)
        factor_amr = await self.factors.verify(factor, sub, proof, binding=approval.nonce)
        return self._issue(claims, sub, sid, client_id, details, approval.expires_at, factor,
                           factor_amr)

    def _issue(
        self,
        claims: Mapping[str, Any],
        sub: str,
        sid: str,
        client_id: str,
        details: WithdrawalDetails,
        expires_at: int,
        factor: str,
        factor_amr: tuple[str, ...],
    ) -> Approved:
        now = int(self.clock.now())
        ttl = min(MAX_WITHDRAWAL_TTL, token_ttl(self.settings, (WITHDRAW_SCOPE,)), expires_at - now)
        if ttl < 1:
            raise InvalidGrant("the approval has expired (expires_at)", reason="expired")
        cnf = claims.get("cnf")
        jkt = cnf.get("jkt") if isinstance(cnf, Mapping) else None
        authorization_details = [details.as_json()]
        grant = Grant(
            sub=sub,
            client_id=client_id,
            audience=details.audience,
            scopes=(WITHDRAW_SCOPE,),
            auth_time=now,
            amr=tuple(dict.fromkeys((WALLET_AMR, *factor_amr, _MFA))),
            sid=sid,
            jkt=str(jkt) if jkt else None,
            # RFC 9396 §9.1: the JWT access token carries the authorization details.
            extra={"authorization_details": authorization_details},
        )
        access = self.issuer.issue(grant, ttl)
        # RFC 9396 §7: the token response also returns the authorization details granted.
        response = {
            "access_token": access.token,
            "token_type": "DPoP" if grant.jkt else "Bearer",
            "expires_in": access.ttl,
            "scope": WITHDRAW_SCOPE,
            "authorization_details": authorization_details,
        }
        return Approved(response, grant, details, factor, access.jti)

    async def _peek(self, nonce: str, sid: str) -> None:
        try:
            await self.nonces.peek(nonce, sid)
        except InvalidGrant as exc:
            raise _session_nonce(exc) from None

    async def _consume(self, nonce: str, sid: str) -> None:
        try:
            await self.nonces.consume(nonce, sid)
        except InvalidGrant as exc:
            raise _session_nonce(exc) from None


def _session_nonce(exc: InvalidGrant) -> InvalidGrant:
    """The nonce book speaks of clients; a transaction nonce is bound to a session."""
    if exc.reason == "nonce_binding":
        return InvalidGrant("the nonce was issued to another session", reason="nonce_binding")
    return exc
